"""Forward kinematics and linear blend skinning shared by the body models.

The semantics are Blender's armature semantics, so what the engine computes is what an armature
built from the rig description shows:

    world[j] = world[parent] @ (rest[parent]^-1 @ rest[j]) @ [local_rotation[j] | t_j]
    skin[j]  = world[j] @ rest[j]^-1
    vertex   = sum_j weight[v, j] * skin[j] @ rest_vertex

where ``t_j`` is zero except at the root (the root translation) and ``rest[-1]`` is the identity.

The bodies pose through :func:`pose_and_skin`: both steps in one autograd node with a
hand-written backward and sparse skinning weights, which is what an optimization step spends
least on. :func:`forward_kinematics` and :func:`skin_vertices` compute the same with plain
torch operations; the tests hold the fused version to them, values and gradients.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property

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
    # (J, J) 1.0 where column d is row j or one of its descendants: the backward pass of
    # pose_and_skin sums each joint's subtree with one product.
    subtree: torch.Tensor | None = None
    # (J,) long parent of each joint, J (the identity slot) for the root.
    parent_slot: torch.Tensor | None = None

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
        subtree = torch.eye(count)
        for joint in range(count - 1, 0, -1):  # children come after parents: add each row upwards
            subtree[parents[joint]] += subtree[joint]
        return KinematicTree(
            jump_ancestors=tuple(tables),
            parent_index=parent_index,
            parents=parents,
            subtree=subtree,
            parent_slot=torch.tensor([count] + list(parents[1:]), dtype=torch.long),
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


def _sparse_csr(indices: torch.Tensor, values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A CSR matrix from (2, nnz) COO indices. PyTorch flags CSR support as beta with a
    warning on stderr; the operations used here (CSR times dense, on the CPU) are the long
    established ones, so the warning is silenced rather than shown to every user."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
        return torch.sparse_coo_tensor(indices, values, size, check_invariants=True).coalesce().to_sparse_csr()


@dataclass(frozen=True)
class SparseWeights:
    """Skinning weights (V', J) as sparse matrices: a vertex has a few influences (Anny at
    most 8, 3.7 on average, of 104 bones), and a sparse product over them is several times
    faster than the dense one. by_vertex: CSR (V', J); by_joint: CSR (J, V')."""

    by_vertex: torch.Tensor
    by_joint: torch.Tensor

    @staticmethod
    def from_dense(weights: torch.Tensor) -> "SparseWeights":
        vertex, joint = weights.nonzero(as_tuple=True)
        values = weights[vertex, joint]
        count, joints = weights.shape
        return SparseWeights(
            _sparse_csr(torch.stack([vertex, joint]), values, (count, joints)),
            _sparse_csr(torch.stack([joint, vertex]), values, (joints, count)),
        )


@dataclass(frozen=True)
class SkinningMatrix:
    """A constant shape's skinning as one sparse product: entry (v, 4 j + k) is vertex v's
    weight for joint j times coordinate k of its homogeneous rest position, so that vertex v
    is sum over (j, k) of entry (v, (j, k)) * [skin_rotation_j | skin_translation_j][:, k].
    For R rest shapes the matrix is block-diagonal over them.

    by_vertex: CSR (R V', R 4 J); by_row: its transpose, CSR (R 4 J, R V')."""

    by_vertex: torch.Tensor
    by_row: torch.Tensor
    batch: int


def skinning_matrix(rest_vertices: torch.Tensor, weights: torch.Tensor) -> SkinningMatrix:
    """(R, V', 3) rest vertices (no gradient), (V', J) dense weights -> their SkinningMatrix."""
    rest_vertices = rest_vertices.detach()
    batch, count = rest_vertices.shape[:2]
    joints = weights.shape[1]
    vertex, joint = weights.nonzero(as_tuple=True)
    homogeneous_rest = torch.cat([rest_vertices, torch.ones_like(rest_vertices[..., :1])], dim=-1)  # (R, V', 4)
    values = weights[vertex, joint].to(rest_vertices.dtype)[None, :, None] * homogeneous_rest[:, vertex]  # (R, nnz, 4)
    person = torch.arange(batch)[:, None, None]
    rows = (person * count + vertex[None, :, None]).expand_as(values)
    columns = person * (4 * joints) + 4 * joint[None, :, None] + torch.arange(4)
    size = (batch * count, batch * 4 * joints)
    rows, columns, values = rows.reshape(-1), columns.reshape(-1), values.reshape(-1)
    return SkinningMatrix(
        by_vertex=_sparse_csr(torch.stack([rows, columns]), values, size),
        by_row=_sparse_csr(torch.stack([columns, rows]), values, size[::-1]),
        batch=batch,
    )


def _rigid_inverse(rotations: torch.Tensor, translations: torch.Tensor) -> torch.Tensor:
    """The inverse of the rigid transforms [rotations | translations] ((..., 3, 3), (..., 3))
    as (..., 4, 4)."""
    rotation_t = rotations.transpose(-1, -2)
    return homogeneous(rotation_t, -(rotation_t @ translations.unsqueeze(-1))[..., 0])


def _batch_sum(gradient: torch.Tensor, batch: int) -> torch.Tensor:
    """Sum a (B, ...) gradient over B for an input that had batch size ``batch`` (1 or B)."""
    return gradient.sum(0, keepdim=True) if batch == 1 and gradient.shape[0] != 1 else gradient


@dataclass(frozen=True)
class RestTransforms:
    """What posing needs of a skeleton's rest frames (B or 1 batch):

    relative_rotations: (B, J, 3, 3) rest orientation of each joint in its parent's rest
        frame (the root's: in the model frame); relative_offsets: (B, J, 3) likewise for the
        joint's head (the root's: its rest head); rest_inverse: (B, J, 4, 4) inverse rest frames."""

    relative_rotations: torch.Tensor
    relative_offsets: torch.Tensor
    rest_inverse: torch.Tensor

    @staticmethod
    def from_rest(tree: KinematicTree, rest_rotations: torch.Tensor, rest_positions: torch.Tensor) -> "RestTransforms":
        """rest_rotations (B, J, 3, 3) orthonormal, rest_positions (B, J, 3)."""
        parent = tree.parent_index[1:]
        parent_t = rest_rotations[:, parent].transpose(-1, -2)
        relative = torch.cat([rest_rotations[:, :1], parent_t @ rest_rotations[:, 1:]], dim=1)
        offsets = (parent_t @ (rest_positions[:, 1:] - rest_positions[:, parent]).unsqueeze(-1))[..., 0]
        return RestTransforms(
            relative, torch.cat([rest_positions[:, :1], offsets], dim=1), _rigid_inverse(rest_rotations, rest_positions)
        )


def _skin_by_matrix(matrix: SkinningMatrix, skin: torch.Tensor) -> torch.Tensor:
    """(B, J, 3, 4) skin transforms -> (B, V', 3) vertices."""
    batch, joints = skin.shape[:2]
    columns = skin.transpose(-1, -2).reshape(batch, joints * 4, 3)  # row (j, k)
    if matrix.batch == batch:
        return (matrix.by_vertex @ columns.reshape(-1, 3)).reshape(batch, -1, 3)
    # One rest shape for every pose: the poses side by side as columns of one product.
    stacked = columns.permute(1, 0, 2).reshape(joints * 4, batch * 3)
    return (matrix.by_vertex @ stacked).reshape(-1, batch, 3).permute(1, 0, 2)


def _skin_by_matrix_backward(matrix: SkinningMatrix, grad_vertices: torch.Tensor, joints: int) -> torch.Tensor:
    """(B, V', 3) vertex gradient -> (B, J, 3, 4) gradient of the skin transforms."""
    batch = grad_vertices.shape[0]
    if matrix.batch == batch:
        rows = matrix.by_row @ grad_vertices.reshape(-1, 3)  # (B 4 J, 3)
        return rows.reshape(batch, joints, 4, 3).transpose(-1, -2)
    stacked = grad_vertices.permute(1, 0, 2).reshape(-1, batch * 3)
    rows = matrix.by_row @ stacked  # (4 J, B 3)
    return rows.reshape(joints, 4, batch, 3).permute(2, 0, 3, 1)


class _PoseAndSkin(torch.autograd.Function):
    """Forward kinematics and linear blend skinning as one autograd node (see pose_and_skin).

    Why by hand: built from torch operations, the pointer-jumping products, their gathers and
    the skinning leave a few hundred small autograd nodes per step, whose backward (index
    scatters, one 4x4 product per node and direction) cost more than the arithmetic. Here the
    backward is a handful of batched products: the gradient of a joint's relative transform
    T_j (world_j = world_parent(j) @ T_j) is

        dL/dT_j = world_parent(j)^T @ (sum over d in subtree(j) of G_d @ world_d^T) @ world_j^-T

    with G_d the gradient on world_d itself (from the vertices it skins and from the frame's
    own users), since world_d = world_j @ world_j^-1 @ world_d; the subtree sums are one
    product with the tree's (J, J) subtree matrix."""

    @staticmethod
    def forward(ctx, rotations, translations, rest_inverse, rest_vertices, matrix, weights, tree):
        with torch.no_grad():
            batch, joints = rotations.shape[:2]
            identity = torch.eye(4, dtype=rotations.dtype).expand(batch, 1, 4, 4)  # the slot of "no ancestor"
            world = torch.cat([homogeneous(rotations, translations), identity], dim=1)
            for ancestors in tree.jump_ancestors:
                world = world[:, ancestors] @ world
            world = world[:, :joints]
            skin = (world @ rest_inverse)[..., :3, :]  # (B, J, 3, 4)
            blended = None
            if matrix is not None:
                vertices = _skin_by_matrix(matrix, skin)
            else:
                product = weights.by_vertex @ skin.reshape(batch, joints, 12).permute(1, 0, 2).reshape(joints, batch * 12)
                blended = product.reshape(-1, batch, 3, 4).permute(1, 0, 2, 3)  # (B, V', 3, 4)
                # Homogeneous rest positions: one product gives rotation @ rest + translation.
                rest = torch.cat([rest_vertices, torch.ones_like(rest_vertices[..., :1])], dim=-1).expand(batch, -1, -1)
                vertices = (blended @ rest[..., None])[..., 0]
        ctx.tree, ctx.matrix, ctx.weights = tree, matrix, weights
        ctx.batches = (rest_inverse.shape[0], None if rest_vertices is None else rest_vertices.shape[0])
        ctx.save_for_backward(world, rest_inverse, rest if matrix is None else None, blended)
        return world, vertices

    @staticmethod
    def backward(ctx, grad_world, grad_vertices):
        world, rest_inverse, rest, blended = ctx.saved_tensors  # rest: (B, V', 4) homogeneous
        tree, matrix = ctx.tree, ctx.matrix
        batch, joints = world.shape[:2]
        grad_rest_inverse = grad_rest_vertices = None
        direct = grad_world.clone() if grad_world is not None else world.new_zeros(world.shape)
        if grad_vertices is not None:
            if matrix is not None:
                grad_skin = _skin_by_matrix_backward(matrix, grad_vertices, joints)
            else:
                grad_blended = grad_vertices[..., :, None] * rest[..., None, :]  # (B, V', 3, 4)
                flat = grad_blended.permute(1, 0, 2, 3).reshape(-1, batch * 12)  # (V', B * 12)
                grad_skin = (ctx.weights.by_joint @ flat).reshape(joints, batch, 3, 4).permute(1, 0, 2, 3)
                if ctx.needs_input_grad[3]:
                    # vertex = blended_rotation @ rest + blended_translation
                    grad_rest = (grad_vertices[..., None, :] @ blended[..., :3])[..., 0, :]
                    grad_rest_vertices = _batch_sum(grad_rest, ctx.batches[1])
            grad_skin = torch.cat([grad_skin, grad_skin.new_zeros(batch, joints, 1, 4)], dim=2)  # (B, J, 4, 4)
            direct = direct + grad_skin @ rest_inverse.transpose(-1, -2)
            if ctx.needs_input_grad[2]:
                grad_rest_inverse = _batch_sum(world.transpose(-1, -2) @ grad_skin, ctx.batches[0])
        moments = direct @ world.transpose(-1, -2)  # G_d @ world_d^T
        subtree = tree.subtree.to(world.dtype) @ moments.permute(1, 0, 2, 3).reshape(joints, batch * 16)
        subtree = subtree.reshape(joints, batch, 4, 4).permute(1, 0, 2, 3)
        parent_world = torch.cat([world, torch.eye(4, dtype=world.dtype).expand(batch, 1, 4, 4)], dim=1)[:, tree.parent_slot]
        world_inverse = _rigid_inverse(world[..., :3, :3], world[..., :3, 3])
        grad_relative = parent_world.transpose(-1, -2) @ subtree @ world_inverse.transpose(-1, -2)
        return grad_relative[..., :3, :3], grad_relative[..., :3, 3], grad_rest_inverse, grad_rest_vertices, None, None, None


def pose_and_skin(
    tree: KinematicTree,
    rest: RestTransforms,
    local_rotations: torch.Tensor,
    root_translation: torch.Tensor,
    rest_vertices: torch.Tensor | None = None,
    weights: SparseWeights | None = None,
    matrix: SkinningMatrix | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose a skeleton and skin vertices: :func:`forward_kinematics` followed by
    :func:`skin_vertices`, by ``rest_vertices`` (B or 1, V', 3) and ``weights``, or by
    ``matrix``, a constant shape's :func:`skinning_matrix` (the rest vertices are then not
    needed). The same values and gradients for every tensor, ``rest``'s included, through
    one autograd node (see _PoseAndSkin).

    local_rotations: (B, J, 3, 3); root_translation: (B, 3) in the root's rest frame.
    Returns world frames (B, J, 4, 4) and vertices (B, V', 3)."""
    if tree.subtree is None or tree.parent_slot is None:
        raise ValueError("pose_and_skin needs a KinematicTree built by KinematicTree.from_parents")
    if matrix is None and (rest_vertices is None or weights is None):
        raise ValueError("pose_and_skin needs either a skinning matrix or rest vertices and weights")
    batch = max(rest.relative_rotations.shape[0], local_rotations.shape[0], root_translation.shape[0])
    rotations = rest.relative_rotations @ local_rotations
    offsets = rest.relative_offsets.expand(batch, -1, -1)
    root = offsets[:, 0] + (rest.relative_rotations[:, 0] @ root_translation.unsqueeze(-1))[..., 0]
    translations = torch.cat([root[:, None], offsets[:, 1:]], dim=1)
    return _PoseAndSkin.apply(
        rotations.expand(batch, -1, -1, -1), translations, rest.rest_inverse,
        None if matrix is not None else rest_vertices, matrix, None if matrix is not None else weights, tree,
    )


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

    @cached_property
    def sparse_weights(self) -> SparseWeights:
        return SparseWeights.from_dense(self.weights)


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
    keeps, in a dictionary, what posing derives from the shape alone: the rest vertices and
    skinning matrix of each vertex subset asked for with it, and its RestTransforms."""

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


def _per_shape(per_subset: dict[bytes, object] | None, key: bytes, compute):
    """``compute()`` once per key for a cached shape's entry (``per_subset`` None: the shape
    is being optimized, nothing is kept)."""
    if per_subset is None:
        return compute()
    value = per_subset.get(key)
    if value is None:
        value = compute()
        if len(per_subset) >= VertexSubsetCache.MAX_ENTRIES:
            per_subset.pop(next(iter(per_subset)))
        per_subset[key] = value
    return value


def cached_skinning_matrix(
    per_subset: dict[bytes, object] | None, subset: VertexSubset, rest_vertices: torch.Tensor
) -> SkinningMatrix | None:
    """The :func:`skinning_matrix` of a cached shape's subset, made once; None when the shape
    is being optimized."""
    if per_subset is None:
        return None
    return _per_shape(per_subset, subset.key + b"/skinning", lambda: skinning_matrix(rest_vertices, subset.weights))


def cached_rest_transforms(
    per_subset: dict[bytes, object] | None, tree: KinematicTree, rest_rotations: torch.Tensor, rest_positions: torch.Tensor
) -> RestTransforms:
    """:meth:`RestTransforms.from_rest`, made once for a cached shape (``per_subset`` given)."""
    return _per_shape(per_subset, b"rest-transforms", lambda: RestTransforms.from_rest(tree, rest_rotations, rest_positions))


def cached_rest_vertices(
    per_subset: dict[bytes, object] | None, subset: VertexSubset, compute
) -> torch.Tensor:
    """``compute()`` once per subset for a cached shape (``per_subset`` None: no caching)."""
    return _per_shape(per_subset, subset.key, compute)
