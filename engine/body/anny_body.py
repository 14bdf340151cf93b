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
frame, its tail lying on the frame's Y axis (see ``engine.rig.bone_tails``). The root's rest
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
    VertexSubset,
    VertexSubsetCache,
    forward_kinematics,
    skin_vertices,
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
        # Anny's phenotype code runs in its own precision (float64).
        phenotypes = shape.to(self._no_local_changes.dtype)
        coefficients = self._anny._get_phenotype_blendshape_coefficients(
            phenotypes, self._no_local_changes, self._no_facial_actions
        )
        return coefficients.to(self.dtype)

    def _rest_skeleton(self, coefficients: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K) -> rest rotations (B, J, 3, 3), rest heads (B, J, 3)."""
        heads = self._template_heads + torch.einsum("bk,kjc->bjc", coefficients, self._head_blendshapes)
        covariance = self._template_orientations + torch.einsum(
            "bk,kjmn->bjmn", coefficients, self._orientation_blendshapes
        )
        rotations = self._roma.special_procrustes(covariance, method="svd")
        identity = torch.eye(3, dtype=rotations.dtype).expand(rotations.shape[0], 1, 3, 3)
        rotations = torch.cat([identity, rotations[:, 1:]], dim=1)
        return rotations, heads

    def _rest_vertices(self, coefficients: torch.Tensor, subset: "VertexSubset") -> torch.Tensor:
        offsets = coefficients @ subset.blendshapes
        return subset.template + offsets.reshape(coefficients.shape[0], -1, 3)

    def _rest_state(self, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """shape (B, S) -> coefficients (B, K), rest rotations (B, J, 3, 3), heads (B, J, 3).
        A shape that is not being optimised is computed once and reused."""
        cached = self._rest_cache.get(shape)
        if cached is not None:
            return cached
        coefficients = self.blendshape_coefficients(shape)
        rotations, heads = self._rest_skeleton(coefficients)
        state = (coefficients, rotations, heads)
        self._rest_cache.put(shape, state)
        return state

    def rest_joint_frames(self, shape: torch.Tensor) -> torch.Tensor:
        rotations, heads = self._rest_skeleton(self.blendshape_coefficients(shape))
        return _homogeneous(rotations, heads)

    def rest_vertices(self, shape: torch.Tensor, vertex_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self._rest_vertices(self.blendshape_coefficients(shape), self._subsets.get(vertex_ids))

    # ------------------------------------------------------------------ posing
    def forward(
        self,
        local_rotations: torch.Tensor,
        root_translation: torch.Tensor,
        shape: torch.Tensor,
        vertex_ids: torch.Tensor | None = None,
    ) -> BodyOutput:
        coefficients, rest_rotations, rest_heads = self._rest_state(shape.to(self.dtype))
        skeleton = forward_kinematics(
            self._tree, rest_rotations, rest_heads, local_rotations.to(self.dtype), root_translation.to(self.dtype)
        )
        subset = self._subsets.get(vertex_ids)
        vertices = skin_vertices(self._rest_vertices(coefficients, subset), subset.weights, skeleton)
        return BodyOutput(
            vertices=vertices,
            joints=skeleton.world_positions,
            joint_frames=_homogeneous(skeleton.world_rotations, skeleton.world_positions),
        )


def _homogeneous(rotations: torch.Tensor, translations: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3), (..., 3) -> (..., 4, 4)."""
    top = torch.cat([rotations, translations.unsqueeze(-1)], dim=-1)
    bottom = torch.zeros(top.shape[:-2] + (1, 4), dtype=top.dtype)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)
