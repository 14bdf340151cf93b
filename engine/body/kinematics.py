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
    """The joints grouped by depth so that FK takes one batched product per depth level
    instead of one per joint.

    order: (J,) joint indices sorted by depth (root first).
    inverse_order: (J,) position of each joint in ``order``.
    level_slices: (first, last) positions in ``order`` of each depth level.
    parent_positions: (J,) for each position in ``order``, its parent's position in ``order``
        (0 for the root).
    """

    order: torch.Tensor
    inverse_order: torch.Tensor
    level_slices: tuple[tuple[int, int], ...]
    parent_positions: torch.Tensor
    parents: tuple[int, ...]

    @staticmethod
    def from_parents(parents: tuple[int, ...] | list[int]) -> "KinematicTree":
        parents = tuple(int(p) for p in parents)
        if parents[0] >= 0 or any(p < 0 for p in parents[1:]):
            raise ValueError("the root must be joint 0 and the only joint without a parent")
        children: list[list[int]] = [[] for _ in parents]
        for joint, parent in enumerate(parents[1:], start=1):
            if parent >= joint:
                raise ValueError("every parent must come before its children")
            children[parent].append(joint)
        order = [0]
        slices = []
        first = 0
        while first < len(order):
            last = len(order)
            slices.append((first, last))
            for position in range(first, last):
                order.extend(children[order[position]])
            first = last
        position_of = {joint: position for position, joint in enumerate(order)}
        parent_positions = [0] + [position_of[parents[joint]] for joint in order[1:]]
        order_t = torch.tensor(order, dtype=torch.long)
        return KinematicTree(
            order=order_t,
            inverse_order=torch.argsort(order_t),
            level_slices=tuple(slices),
            parent_positions=torch.tensor(parent_positions, dtype=torch.long),
            parents=parents,
        )


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
    order = tree.order
    rest_r = rest_rotations[:, order]
    rest_p = rest_positions[:, order]
    local = local_rotations[:, order]
    parent = tree.parent_positions
    rest_r_parent_t = rest_r[:, parent].transpose(-1, -2)
    # Relative rest transform of each joint in its parent's rest frame, then its local rotation,
    # as 4x4 matrices so that each depth level costs one gather and one batched product.
    relative_rotation = rest_r_parent_t @ rest_r @ local
    relative_offset = (rest_r_parent_t @ (rest_p - rest_p[:, parent]).unsqueeze(-1)).squeeze(-1)
    root_rotation = rest_r[:, 0] @ local[:, 0]
    root_position = rest_p[:, 0] + (rest_r[:, 0] @ root_translation.unsqueeze(-1)).squeeze(-1)
    relative = homogeneous(
        torch.cat([root_rotation.unsqueeze(1), relative_rotation[:, 1:]], dim=1),
        torch.cat([root_position.unsqueeze(1), relative_offset[:, 1:]], dim=1),
    )
    world = [relative[:, :1]]
    for (prev_first, _), (first, last) in zip(tree.level_slices, tree.level_slices[1:]):
        # the parents of a level all lie in the level before it
        parent_local = parent[first:last] - prev_first
        world.append(world[-1][:, parent_local] @ relative[:, first:last])
    world_matrices = torch.cat(world, dim=1)[:, tree.inverse_order]
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
