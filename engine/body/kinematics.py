"""Forward kinematics and linear blend skinning shared by the body models.

The semantics are Blender's armature semantics, so what the engine computes is what an armature
built from the rig description shows:

    world[j] = world[parent] @ (rest[parent]^-1 @ rest[j]) @ [local_rotation[j] | t_j]
    skin[j]  = world[j] @ rest[j]^-1
    vertex   = sum_j weight[v, j] * skin[j] @ rest_vertex

where ``t_j`` is zero except at the root (the root translation) and ``rest[-1]`` is the identity.
Transforms are kept as (rotation, translation) pairs rather than 4x4 matrices: it halves the
arithmetic of every product.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KinematicTree:
    """The ancestor tables for forward kinematics by pointer jumping: after step s every
    joint holds the product of the relative transforms of its 2^(s+1) nearest ancestors
    (itself included), so a tree of depth D takes ceil(log2 D) batched products instead of
    one per depth level (a few large operations are far cheaper than many small ones).

    jump_ancestors: one (J + 1,) long table per step: the 2^s-th ancestor of each joint, or
        J (an identity slot, which points to itself) when there is none.
    parent_index: (J,) long parent of each joint (0 for the root, whose entry is unused).
    """

    jump_ancestors: tuple[torch.Tensor, ...]
    parent_index: torch.Tensor
    parents: tuple[int, ...]

    @staticmethod
    def from_parents(parents: tuple[int, ...] | list[int]) -> "KinematicTree":
        parents = tuple(int(p) for p in parents)
        if parents[0] >= 0 or any(p < 0 for p in parents[1:]):
            raise ValueError("the root must be joint 0 and the only joint without a parent")
        for joint, parent in enumerate(parents[1:], start=1):
            if parent >= joint:
                raise ValueError("every parent must come before its children")
        count = len(parents)
        depth = [1] * count
        for joint in range(1, count):
            depth[joint] = depth[parents[joint]] + 1
        ancestor = [p if p >= 0 else count for p in parents] + [count]
        tables = []
        covered = 1
        while covered < max(depth):
            tables.append(torch.tensor(ancestor, dtype=torch.long))
            ancestor = [ancestor[a] for a in ancestor]
            covered *= 2
        parent_index = torch.tensor([0] + list(parents[1:]), dtype=torch.long)  # the root's own: unused
        return KinematicTree(jump_ancestors=tuple(tables), parent_index=parent_index, parents=parents)


@dataclass(frozen=True)
class PosedSkeleton:
    """world_rotations: (B, J, 3, 3); world_positions: (B, J, 3);
    skin_rotations: (B, J, 3, 3), skin_translations: (B, J, 3) (skin = world @ rest^-1)."""

    world_rotations: torch.Tensor
    world_positions: torch.Tensor
    skin_rotations: torch.Tensor
    skin_translations: torch.Tensor


def forward_kinematics(
    tree: KinematicTree,
    rest_rotations: torch.Tensor,
    rest_positions: torch.Tensor,
    local_rotations: torch.Tensor,
    root_translation: torch.Tensor,
) -> PosedSkeleton:
    """Pose a skeleton.

    rest_rotations: (B, J, 3, 3) rest frame orientations (model frame), orthonormal.
    rest_positions: (B, J, 3) rest frame origins (joint heads).
    (A batch dimension of 1 broadcasts against the others.)
    local_rotations: (B, J, 3, 3) rotation of each joint in its own rest frame.
    root_translation: (B, 3) root offset, in the root's rest frame (Blender's bone location).
    """
    batch = max(rest_rotations.shape[0], local_rotations.shape[0], root_translation.shape[0])
    rest_rotations = rest_rotations.expand(batch, -1, -1, -1)
    rest_positions = rest_positions.expand(batch, -1, -1)
    local_rotations = local_rotations.expand(batch, -1, -1, -1)
    root_translation = root_translation.expand(batch, -1)
    joints = rest_rotations.shape[1]
    parent = tree.parent_index
    rest_r_parent_t = rest_rotations[:, parent].transpose(-1, -2)
    # Relative rest transform of each joint in its parent's rest frame, then its local rotation.
    relative_rotation = rest_r_parent_t @ rest_rotations @ local_rotations
    relative_offset = (rest_r_parent_t @ (rest_positions - rest_positions[:, parent]).unsqueeze(-1)).squeeze(-1)
    root_rotation = rest_rotations[:, 0] @ local_rotations[:, 0]
    root_position = rest_positions[:, 0] + (rest_rotations[:, 0] @ root_translation.unsqueeze(-1)).squeeze(-1)
    identity = torch.eye(4, dtype=relative_rotation.dtype).expand(batch, 1, 4, 4)
    world_matrices = torch.cat(
        [
            homogeneous(
                torch.cat([root_rotation.unsqueeze(1), relative_rotation[:, 1:]], dim=1),
                torch.cat([root_position.unsqueeze(1), relative_offset[:, 1:]], dim=1),
            ),
            identity,
        ],
        dim=1,
    )  # (B, J + 1, 4, 4), the last slot the identity
    for ancestors in tree.jump_ancestors:
        world_matrices = world_matrices[:, ancestors] @ world_matrices
    world_matrices = world_matrices[:, :joints]
    world_r = world_matrices[..., :3, :3]
    world_p = world_matrices[..., :3, 3]
    skin_r = world_r @ rest_rotations.transpose(-1, -2)
    skin_t = world_p - (skin_r @ rest_positions.unsqueeze(-1)).squeeze(-1)
    return PosedSkeleton(world_r, world_p, skin_r, skin_t)


def skin_vertices(
    rest_vertices: torch.Tensor,
    weights: torch.Tensor,
    skeleton: PosedSkeleton,
) -> torch.Tensor:
    """Linear blend skinning.

    rest_vertices: (B, V', 3); weights: (V', J) dense rows of the skinning weights.
    Returns (B, V', 3). The transforms of each vertex are blended first (one (V', J) x (J, 12)
    product, which BLAS does far faster than gathering a few influences per vertex), then
    applied once.
    """
    batch, joints = skeleton.skin_rotations.shape[:2]
    rest_vertices = rest_vertices.expand(batch, -1, -1)
    transforms = torch.cat(
        [skeleton.skin_rotations.reshape(batch, joints, 9), skeleton.skin_translations], dim=-1
    )
    # One (V', J) x (J, B * 12) product rather than a broadcast batched one.
    blended = weights.to(rest_vertices.dtype) @ transforms.permute(1, 0, 2).reshape(joints, batch * 12)
    blended = blended.reshape(-1, batch, 12).permute(1, 0, 2)
    rotation = blended[..., :9].reshape(batch, -1, 3, 3)
    return (rotation @ rest_vertices.unsqueeze(-1)).squeeze(-1) + blended[..., 9:]


def skinning_matrix(rest_vertices: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B, V', 3) rest vertices, (V', J) weights -> (B, 4 J, V'): each vertex's weights times
    its homogeneous rest position, so that skinning is one product (see skin_with_matrix)."""
    homogeneous_rest = torch.cat([rest_vertices, torch.ones_like(rest_vertices[..., :1])], dim=-1)  # (B, V', 4)
    product = weights.to(rest_vertices.dtype)[None, :, :, None] * homogeneous_rest[:, :, None, :]  # (B, V', J, 4)
    return product.reshape(rest_vertices.shape[0], rest_vertices.shape[1], -1).transpose(1, 2).contiguous()


def skin_with_matrix(matrix: torch.Tensor, skeleton: PosedSkeleton) -> torch.Tensor:
    """Linear blend skinning as one batched product: vertex_i = sum over joints j and
    homogeneous coordinates k of matrix[v, (j, k)] * [skin_rotation_j | skin_translation_j][i, k].

    matrix: (B or 1, 4 J, V') from :func:`skinning_matrix`. Returns (B, V', 3), the same as
    :func:`skin_vertices` with fewer operations to differentiate (a shape that is not
    optimized keeps its matrix for the whole run). The product is taken as (3, 4 J) x (4 J, V'):
    with the vertices as the long output side it is several times faster than (V', 4 J) x
    (4 J, 3)."""
    batch, joints = skeleton.skin_rotations.shape[:2]
    transforms = torch.cat([skeleton.skin_rotations, skeleton.skin_translations[..., None]], dim=-1)  # (B, J, 3, 4)
    rows = transforms.permute(0, 2, 1, 3).reshape(batch, 3, joints * 4)  # [i, (j, k)]
    return torch.bmm(rows, matrix.expand(batch, -1, -1)).transpose(1, 2)


@dataclass(frozen=True)
class VertexSubset:
    """The per-vertex data of a set of vertices, gathered once.

    template: (V', 3); blendshapes: (K, V' * 3) (rest = template + coefficients @ blendshapes);
    weights: (V', J) dense skinning weights; extra: model-specific gathered arrays."""

    template: torch.Tensor
    blendshapes: torch.Tensor
    weights: torch.Tensor
    extra: tuple[torch.Tensor, ...] = ()
    key: bytes = b"all"


class VertexSubsetCache:
    """Gathers of the per-vertex data for the vertex id sets the losses ask for. The optimizer
    asks for the same few sets every iteration, so each is gathered once (keyed by content)."""

    MAX_ENTRIES = 16

    def __init__(
        self,
        template: torch.Tensor,
        blendshapes: torch.Tensor,
        weights: torch.Tensor,
        extra: tuple[torch.Tensor, ...] = (),
    ) -> None:
        """template (V, 3); blendshapes (K, V, 3); weights (V, J); extra: more (K', V, 3)
        per-vertex bases (SMPL-X pose correctives), gathered like the blendshapes."""
        self._template = template
        self._blendshapes = blendshapes
        self._weights = weights
        self._extra = extra
        self._entries: dict[bytes, VertexSubset] = {}
        self._all = VertexSubset(
            template, blendshapes.reshape(blendshapes.shape[0], -1), weights,
            tuple(e.reshape(e.shape[0], -1) for e in extra),
        )

    def get(self, vertex_ids: torch.Tensor | None) -> VertexSubset:
        if vertex_ids is None:
            return self._all
        key = vertex_ids.detach().cpu().numpy().tobytes()
        entry = self._entries.get(key)
        if entry is None:
            ids = vertex_ids.detach().long()
            k = self._blendshapes.shape[0]
            entry = VertexSubset(
                self._template[ids],
                self._blendshapes[:, ids].reshape(k, -1),
                self._weights[ids],
                tuple(e[:, ids].reshape(e.shape[0], -1) for e in self._extra),
                key=key,
            )
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = entry
        return entry


class RestCache:
    """Shape-dependent rest data for shapes that are not being optimised (no gradient), keyed
    by value: stage 2 of the optimizer and every frame of a clip reuse it. Each entry also
    keeps the rest vertices of the vertex subsets asked for with that shape."""

    MAX_ENTRIES = 8

    def __init__(self) -> None:
        self._entries: dict[tuple, tuple] = {}

    def _key(self, shape: torch.Tensor) -> tuple | None:
        if shape.requires_grad and torch.is_grad_enabled():
            return None
        return (shape.dtype, tuple(shape.shape), shape.detach().cpu().numpy().tobytes())

    def get(self, shape: torch.Tensor):
        key = self._key(shape)
        return None if key is None else self._entries.get(key)

    def put(self, shape: torch.Tensor, value: tuple) -> None:
        key = self._key(shape)
        if key is None:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = value


def homogeneous(rotations: torch.Tensor, translations: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3), (..., 3) -> (..., 4, 4)."""
    top = torch.cat([rotations, translations.unsqueeze(-1)], dim=-1)
    bottom = torch.zeros(top.shape[:-2] + (1, 4), dtype=top.dtype)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom.expand(top.shape[:-2] + (1, 4))], dim=-2)


def cached_skinning_matrix(
    per_subset: dict[bytes, torch.Tensor] | None, subset: VertexSubset, rest_vertices: torch.Tensor
) -> torch.Tensor | None:
    """The :func:`skinning_matrix` of a cached shape's subset, made once; None when the shape
    is being optimized or for the whole mesh (its matrix would take tens of megabytes)."""
    if per_subset is None or subset.key == b"all":
        return None
    key = subset.key + b"/skinning"
    matrix = per_subset.get(key)
    if matrix is None:
        matrix = skinning_matrix(rest_vertices, subset.weights)
        if len(per_subset) >= VertexSubsetCache.MAX_ENTRIES:
            per_subset.pop(next(iter(per_subset)))
        per_subset[key] = matrix
    return matrix


def skin_subset(
    per_subset: dict[bytes, torch.Tensor] | None, subset: VertexSubset, rest_vertices: torch.Tensor, skeleton: PosedSkeleton
) -> torch.Tensor:
    """Skin ``subset``'s rest vertices (B or 1, V', 3): by its cached :func:`skinning_matrix`
    when the rest vertices belong to a cached shape (``per_subset`` given), else by
    :func:`skin_vertices`. Returns (B, V', 3)."""
    matrix = cached_skinning_matrix(per_subset, subset, rest_vertices)
    if matrix is not None:
        return skin_with_matrix(matrix, skeleton)
    return skin_vertices(rest_vertices, subset.weights, skeleton)


def cached_rest_vertices(
    per_subset: dict[bytes, torch.Tensor] | None, subset: VertexSubset, compute
) -> torch.Tensor:
    """``compute()`` once per subset for a cached shape (``per_subset`` None: no caching)."""
    if per_subset is None:
        return compute()
    rest = per_subset.get(subset.key)
    if rest is None:
        rest = compute()
        if len(per_subset) >= VertexSubsetCache.MAX_ENTRIES:
            per_subset.pop(next(iter(per_subset)))
        per_subset[subset.key] = rest
    return rest
