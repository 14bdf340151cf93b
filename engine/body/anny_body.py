"""The built-in body: Anny (pip package ``anny``, Apache-2.0, ships its own data).

Anny's model frame is Z up, metres, the body facing -Y with its left side on +X, so
``model_to_world`` is the identity. At rest the pelvis sits near the origin (feet at z ~ -0.8);
the root translation places the body in the world.

The shape is Anny's six phenotypes (gender, age, muscle, weight, height, proportions), each in
[0, 1], 0.5 being the average body.

Only Anny's *rest data* is taken from the package (rest vertices, joint heads and joint
orientations as differentiable functions of the phenotypes, and the skinning weights). Forward
kinematics and skinning are the engine's own (``engine.body.kinematics``) with Blender's armature
semantics, which are Anny's ``"local-bone"`` pose parameterisation with the rest orientations as
reference orientations: each joint's local rotation is a rotation in its own rest frame.

Rest frames: Anny's rest orientations (a Procrustes fit aimed at each bone's tail) are
orthonormal with their Y axis within a few degrees of the head -> child direction; they are used
as they are, so a Blender bone built with ``edit_bone.matrix = rest_frame`` has exactly this
frame, its tail lying on the frame's Y axis (see ``engine.body.rig.bone_tails``). The root's rest
orientation is the identity (it is in Anny's data; the code enforces it), so the root translation
is the same vector in the model frame and in the root bone's frame.
"""

from __future__ import annotations

import hashlib
from functools import cached_property

import numpy as np
import torch

from engine.body.base import BodyModel, BodyOutput
from engine.body.kinematics import (
    KinematicTree,
    RestCache,
    RestTransforms,
    VertexSubset,
    VertexSubsetCache,
    cached_rest_transforms,
    cached_rest_vertices,
    cached_skinning_matrix,
    _per_shape,
    homogeneous,
    pose_and_skin,
)

ANNY_SHAPE_NAMES: tuple[str, ...] = ("gender", "age", "muscle", "weight", "height", "proportions")


class AnnyBody(BodyModel):
    """Anny behind the engine's body interface (see module docstring)."""

    kind = "anny"

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        import anny
        import roma

        self._roma = roma
        self.dtype = dtype
        # Dense skinning ("lbs") avoids importing NVIDIA Warp, which prints on stdout.
        model = anny.Anny(skinning_method="lbs")
        if list(model.phenotype_labels) != list(ANNY_SHAPE_NAMES):
            raise RuntimeError(f"unexpected Anny phenotypes {model.phenotype_labels}")
        self._anny = model
        self.anny_version = anny.__version__
        self.joint_names = tuple(str(label) for label in model.bone_labels)
        self.parents = tuple(int(p) for p in model.bone_parents)
        self.shape_names = ANNY_SHAPE_NAMES
        self._tree = KinematicTree.from_parents(self.parents)

        as_dtype = dict(dtype=dtype)
        self._template_vertices = model.template_vertices.detach().to(**as_dtype)
        self._vertex_blendshapes = model.blendshapes.detach().to(**as_dtype)  # (K, V, 3)
        self._template_heads = model.template_bone_heads.detach().to(**as_dtype)
        self._head_blendshapes = model.bone_heads_blendshapes.detach().to(**as_dtype)
        self._template_orientations = model.bone_template_orientation_matrices.detach().to(**as_dtype)
        self._orientation_blendshapes = model.bone_orientation_blendshapes.detach().to(**as_dtype)
        self._vertex_joint_indices = model.vertex_bone_indices.detach().long()
        self._vertex_joint_weights = model.vertex_bone_weights.detach().to(**as_dtype)
        self._dense_weights = torch.from_numpy(self.skinning_weights()).to(**as_dtype)
        self._faces = model.faces.detach().cpu().numpy().astype(np.int64)
        self._subsets = VertexSubsetCache(self._template_vertices, self._vertex_blendshapes, self._dense_weights)
        self._rest_cache = RestCache()
        self._no_local_changes = torch.zeros(1, 0, dtype=model.template_vertices.dtype)
        self._no_facial_actions = torch.zeros(1, 0, dtype=model.template_vertices.dtype)
        self._phenotype_weights = _PhenotypeWeights.from_anny(model, dtype)

    # ------------------------------------------------------------------ static data
    @property
    def faces(self) -> np.ndarray:
        return self._faces

    @property
    def num_vertices(self) -> int:
        return int(self._template_vertices.shape[0])

    @property
    def model_to_world(self) -> np.ndarray:
        return np.eye(3)

    @cached_property
    def identity_hash(self) -> str:
        digest = hashlib.sha256()
        digest.update(f"anny {self.anny_version}".encode())
        for array in (self._template_vertices, self._vertex_joint_indices, self._vertex_joint_weights):
            digest.update(array.cpu().numpy().tobytes())
        digest.update(self._faces.tobytes())
        return digest.hexdigest()[:32]

    def default_shape(self) -> torch.Tensor:
        return torch.full((len(ANNY_SHAPE_NAMES),), 0.5, dtype=self.dtype)

    def skinning_weights(self) -> np.ndarray:
        dense = np.zeros((self.num_vertices, len(self.joint_names)), dtype=np.float32)
        rows = np.arange(self.num_vertices)[:, None]
        np.add.at(dense, (rows, self._vertex_joint_indices.numpy()), self._vertex_joint_weights.numpy())
        return dense

    # ------------------------------------------------------------------ shape-dependent rest data
    def blendshape_coefficients(self, shape: torch.Tensor) -> torch.Tensor:
        """shape (B, 6) phenotypes -> (B, K) Anny blendshape coefficients (differentiable)."""
        if self._phenotype_weights is not None:
            return self._phenotype_weights(shape.to(self.dtype))
        return self.reference_blendshape_coefficients(shape)

    def reference_blendshape_coefficients(self, shape: torch.Tensor) -> torch.Tensor:
        """The same through Anny's own code (slower: many small float64 operations)."""
        # Anny's phenotype code runs in its own precision (float64).
        phenotypes = shape.to(self._no_local_changes.dtype)
        coefficients = self._anny._get_phenotype_blendshape_coefficients(
            phenotypes, self._no_local_changes, self._no_facial_actions
        )
        return coefficients.to(self.dtype)

    def _rest_skeleton(self, coefficients: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K) -> rest rotations (B, J, 3, 3), rest heads (B, J, 3)."""
        return self._rest_rotations(coefficients), self._rest_heads(coefficients)

    def _rest_heads(self, coefficients: torch.Tensor) -> torch.Tensor:
        return self._template_heads + torch.einsum("bk,kjc->bjc", coefficients, self._head_blendshapes)

    def _rest_rotations(self, coefficients: torch.Tensor) -> torch.Tensor:
        covariance = self._template_orientations + torch.einsum(
            "bk,kjmn->bjmn", coefficients, self._orientation_blendshapes
        )
        rotations = self._roma.special_procrustes(covariance, method="svd")
        identity = torch.eye(3, dtype=rotations.dtype).expand(rotations.shape[0], 1, 3, 3)
        return torch.cat([identity, rotations[:, 1:]], dim=1)

    def _rest_vertices(self, coefficients: torch.Tensor, subset: "VertexSubset") -> torch.Tensor:
        offsets = coefficients @ subset.blendshapes
        return subset.template + offsets.reshape(coefficients.shape[0], -1, 3)

    def _rest_state(self, shape: torch.Tensor) -> tuple:
        """shape (B, S) -> coefficients (B, K), rest rotations (B, J, 3, 3), heads (B, J, 3),
        and a per-subset rest-vertex cache (None when the shape is being optimised).
        A shape that is not being optimised is computed once and reused."""
        cached = self._rest_cache.get(shape)
        if cached is not None:
            return cached
        coefficients = self.blendshape_coefficients(shape)
        rotations, heads = self._rest_skeleton(coefficients)
        state = (coefficients, rotations, heads, {})
        self._rest_cache.put(shape, state)
        if self._rest_cache.get(shape) is None:
            return (coefficients, rotations, heads, None)
        return state

    def rest_joint_frames(self, shape: torch.Tensor) -> torch.Tensor:
        rotations, heads = self._rest_skeleton(self.blendshape_coefficients(shape))
        return homogeneous(rotations, heads)

    def rest_vertices(self, shape: torch.Tensor, vertex_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self._rest_vertices(self.blendshape_coefficients(shape), self._subsets.get(vertex_ids))

    # ------------------------------------------------------------------ posing
    def forward(
        self,
        local_rotations: torch.Tensor,
        root_translation: torch.Tensor,
        shape: torch.Tensor,
        vertex_ids: torch.Tensor | None = None,
        *,
        rest_orientation_shape: torch.Tensor | None = None,
    ) -> BodyOutput:
        shape = shape.to(self.dtype)
        if rest_orientation_shape is not None and shape.requires_grad and torch.is_grad_enabled():
            # The orientations' Procrustes fit (an SVD per bone, forward and backward) is the
            # costliest part of a shaped pass; held at another shape they come from the cache.
            return self._forward_held(local_rotations, root_translation, shape, vertex_ids, rest_orientation_shape)
        coefficients, rest_rotations, rest_heads, per_subset = self._rest_state(shape)
        subset = self._subsets.get(vertex_ids)
        rest = cached_rest_vertices(per_subset, subset, lambda: self._rest_vertices(coefficients, subset))
        frames, vertices = pose_and_skin(
            self._tree, cached_rest_transforms(per_subset, self._tree, rest_rotations, rest_heads),
            local_rotations.to(self.dtype), root_translation.to(self.dtype),
            rest, subset.sparse_weights, cached_skinning_matrix(per_subset, subset, rest),
        )
        return BodyOutput(vertices=vertices, joints=frames[..., :3, 3], joint_frames=frames)

    def _forward_held(
        self,
        local_rotations: torch.Tensor,
        root_translation: torch.Tensor,
        shape: torch.Tensor,
        vertex_ids: torch.Tensor | None,
        rest_orientation_shape: torch.Tensor,
    ) -> BodyOutput:
        """forward() with the rest orientations held at ``rest_orientation_shape`` while the
        shape has a gradient. With the orientations fixed, what posing reads of the rest
        skeleton (each joint's offset in its parent's rest frame, the inverse rest frame's
        translation) is linear in the blendshape coefficients, like the rest vertices: one
        product each with maps made once per held shape (_held_skeleton_map), instead of the
        joint heads and a dozen operations of RestTransforms.from_rest under autograd."""
        held = rest_orientation_shape.detach().to(self.dtype)
        subset = self._subsets.get(vertex_ids)
        relative_rotations, inverse_rotations, base, basis = self._held_skeleton_map(held)
        coefficients = self.blendshape_coefficients(shape)
        batch, joints = shape.shape[0], len(self.parents)
        skeleton = torch.baddbmm(base[:, None], coefficients[:, None], basis)[:, 0].reshape(batch, 2, joints, 3)
        rest = RestTransforms(
            relative_rotations, skeleton[:, 0], homogeneous(inverse_rotations.expand(batch, -1, -1, -1), skeleton[:, 1])
        )
        frames, vertices = pose_and_skin(
            self._tree, rest, local_rotations.to(self.dtype), root_translation.to(self.dtype),
            self._rest_vertices(coefficients, subset), subset.sparse_weights, None,
        )
        return BodyOutput(vertices=vertices, joints=frames[..., :3, 3], joint_frames=frames)

    def _held_skeleton_map(self, held: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """For rest orientations R held at ``held`` (B, S): relative rest rotations and R^T
        (B, J, 3, 3), and the linear map of the coefficients c to the joints' offsets in their
        parents' rest frames and the inverse rest frames' translations, flattened as
        base (B, 2 J 3) + c @ basis (B, K, 2 J 3). Made once per held shape (kept with its
        cached rest data)."""
        _, rotations, _, per_subset = self._rest_state(held)  # rotations: (B, J, 3, 3)

        def compute() -> tuple[torch.Tensor, ...]:
            parent = self._tree.parent_index[1:]
            parent_t = rotations[:, parent].transpose(-1, -2)

            def linear(heads: torch.Tensor) -> torch.Tensor:
                """(C, J, 3) heads -> (B, C, 2 J 3): offsets, then inverse translations."""
                offsets = torch.einsum("bjmn,cjn->bcjm", parent_t, heads[:, 1:] - heads[:, parent])
                root = heads[None, :, :1].expand(rotations.shape[0], -1, -1, -1)
                inverse = -torch.einsum("bjnm,cjn->bcjm", rotations, heads)
                return torch.cat([root, offsets, inverse], dim=2).flatten(2)

            relative = torch.cat([rotations[:, :1], parent_t @ rotations[:, 1:]], dim=1)
            base = linear(self._template_heads[None])[:, 0]
            return relative, rotations.transpose(-1, -2), base, linear(self._head_blendshapes)

        if per_subset is None:
            return compute()
        return _per_shape(per_subset, b"held-skeleton", compute)


class _PhenotypeWeights:
    """Anny's phenotype -> blendshape coefficient map in a few batched operations.

    Anny weights each phenotype blendshape by a product, over the phenotype features, of the
    linear interpolation coefficient of one variation (e.g. "young", "maxmuscle"), then maps the
    weights through the compaction projection. Here the interpolation is done for the six shape
    features at once (same intervals as Anny's, so the one-sided gradients at the anchors, the
    default 0.5 included, are the same), the fixed features (race, cup size, firmness) are
    constants, and the products are one gather and one product.
    """

    def __init__(self, anchors, counts, fixed, gather, projection) -> None:
        self.anchors = anchors  # (6, N) padded with +inf
        self.counts = counts  # (6,) number of anchors of each feature
        self.fixed = fixed  # (F,) coefficients of the fixed features' variations, then 1.0
        self.gather = gather  # (K0, G) columns of [shape-feature coefficients | fixed] per blendshape
        self.projection = projection  # (K0, K) or None
        self.low = anchors[:, 0].unsqueeze(0)  # (1, 6) first and last anchors: the clamp range
        self.high = anchors.gather(1, (counts - 1).unsqueeze(1)).T
        self.anchors_batch1 = anchors.unsqueeze(0)

    @staticmethod
    def from_anny(model, dtype: torch.dtype) -> "_PhenotypeWeights | None":
        from anny.models.model_data import PHENOTYPE_VARIATIONS
        from anny.utils.interpolation import linear_interpolation_coefficients

        if model.extrapolate_phenotypes or model.local_change_labels or model.facial_action_labels:
            return None
        groups = list(PHENOTYPE_VARIATIONS)
        columns = {}  # global variation column -> position in [shape coefficients | fixed]
        shape_anchor_rows, counts = [], []
        position = 0
        for feature in ANNY_SHAPE_NAMES:
            values = model.anchors[feature].detach().double()
            shape_anchor_rows.append(values)
            counts.append(len(values))
        width = max(counts)
        anchors = torch.full((len(ANNY_SHAPE_NAMES), width), float("inf"), dtype=torch.float64)
        for row, values in enumerate(shape_anchor_rows):
            anchors[row, : len(values)] = values
        offsets = {}
        start = 0
        for group in groups:
            offsets[group] = start
            start += len(PHENOTYPE_VARIATIONS[group])
        for row, feature in enumerate(ANNY_SHAPE_NAMES):
            for i in range(len(PHENOTYPE_VARIATIONS[feature])):
                columns[offsets[feature] + i] = row * width + i
        position = len(ANNY_SHAPE_NAMES) * width
        fixed_values = []
        for group in groups:
            if group in ANNY_SHAPE_NAMES:
                continue
            if group == "race":
                coefficients = torch.full((3,), 1.0 / 3.0, dtype=torch.float64)
            else:
                half = torch.tensor([0.5], dtype=torch.float64)
                coefficients = linear_interpolation_coefficients(half, model.anchors[group].double())[0]
            for i, value in enumerate(coefficients):
                columns[offsets[group] + i] = position
                fixed_values.append(float(value))
                position += 1
        one = position
        fixed_values.append(1.0)
        mask = model.stacked_phenotype_blend_shapes_mask.detach() > 0.5
        gather = torch.full((mask.shape[0], len(groups)), one, dtype=torch.long)
        for g, group in enumerate(groups):
            block = mask[:, offsets[group]: offsets[group] + len(PHENOTYPE_VARIATIONS[group])]
            if (block.sum(dim=1) > 1).any():
                return None  # not a product of one variation per feature: use Anny's code
            rows, cols = torch.nonzero(block, as_tuple=True)
            gather[rows, g] = torch.tensor([columns[offsets[group] + int(c)] for c in cols], dtype=torch.long)
        projection = model.phenotype_blendshape_projection
        return _PhenotypeWeights(
            anchors.to(dtype),
            torch.tensor(counts),
            torch.tensor(fixed_values, dtype=dtype),
            gather,
            None if projection is None else projection.detach().to(dtype),
        )

    def __call__(self, shape: torch.Tensor) -> torch.Tensor:
        """shape (B, 6) -> (B, K)."""
        batch = shape.shape[0]
        low, high = self.low, self.high
        # Clamped like Anny (torch.where keeps a one-sided gradient on the boundary).
        value = torch.where(shape < low, low, shape)
        value = torch.where(value > high, high, value)
        anchors = self.anchors_batch1.expand(batch, -1, -1)
        index = torch.searchsorted(anchors.contiguous(), value.unsqueeze(-1).contiguous(), side="left").squeeze(-1)
        index = torch.minimum(torch.clamp(index, min=1), (self.counts - 1).unsqueeze(0))
        lower = torch.gather(anchors, 2, (index - 1).unsqueeze(-1)).squeeze(-1)
        upper = torch.gather(anchors, 2, index.unsqueeze(-1)).squeeze(-1)
        alpha = (value - lower) / (upper - lower)
        width = self.anchors.shape[1]
        slots = torch.arange(width).view(1, 1, width)
        coefficients = (slots == (index - 1).unsqueeze(-1)) * (1.0 - alpha).unsqueeze(-1) + (
            slots == index.unsqueeze(-1)
        ) * alpha.unsqueeze(-1)
        table = torch.cat([coefficients.reshape(batch, -1), self.fixed.expand(batch, -1)], dim=1)
        weights = table[:, self.gather].prod(dim=-1)
        return weights if self.projection is None else weights @ self.projection
