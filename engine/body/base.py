"""The one small interface every body model implements.

Conventions (shared with the Blender side through the rig description):

* **Model frame**: the frame the model is defined in (Anny: Z up; SMPL-X: Y up), metres.
  ``model_to_world`` (3x3) turns it into the engine's world frame, which is Blender's:
  Z up, metres, the floor is z = 0 when a body stands on it.
* **Joint rest frames**: ``rest_joint_frames(shape)`` gives each joint's rest transform in the
  model frame (4x4, rotation columns orthonormal). A joint's *local rotation* is expressed in
  its own rest frame, i.e. it is exactly what Blender stores in ``pose_bone.rotation_quaternion``
  for a bone whose rest matrix (armature space) is that rest frame.
* **Root translation**: an offset of the root joint in the model frame (SMPL-X ``transl``;
  Anny's root bone location, its rest orientation being the identity).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class BodyOutput:
    """Posed body, in the world frame.

    vertices: (B, V', 3) where V' is the number of requested vertex ids (all V by default).
    joints: (B, J, 3) joint positions (rest-frame origins after posing).
    joint_frames: (B, J, 4, 4) posed joint frames in the world frame.
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    joint_frames: torch.Tensor


class BodyModel(abc.ABC):
    """A differentiable skinned body. Stateless with respect to pose: ``forward`` takes every
    tensor, so the optimizer owns the variables."""

    #: short identifier used in job files ("anny", "smplx")
    kind: str
    #: one name per joint, in the order of every (.., J, ..) tensor
    joint_names: tuple[str, ...]
    #: parent index of each joint, -1 for the root
    parents: tuple[int, ...]
    #: names of the shape coefficients (Anny phenotypes, SMPL-X betas)
    shape_names: tuple[str, ...]

    @property
    @abc.abstractmethod
    def faces(self) -> np.ndarray:
        """(F, 3) int64 triangle indices."""

    @property
    @abc.abstractmethod
    def num_vertices(self) -> int: ...

    @property
    @abc.abstractmethod
    def model_to_world(self) -> np.ndarray:
        """(3, 3) rotation from the model frame to the world frame (Z up)."""

    @property
    @abc.abstractmethod
    def identity_hash(self) -> str:
        """Hash of everything that defines the mesh and rig (model file bytes, package
        version): the key of the on-disk region cache."""

    @abc.abstractmethod
    def default_shape(self) -> torch.Tensor:
        """(S,) the neutral shape coefficients."""

    @abc.abstractmethod
    def skinning_weights(self) -> np.ndarray:
        """(V, J) float32 skinning weights, rows summing to 1."""

    @abc.abstractmethod
    def rest_joint_frames(self, shape: torch.Tensor) -> torch.Tensor:
        """shape (B, S) -> (B, J, 4, 4) joint rest frames in the model frame."""

    @abc.abstractmethod
    def rest_vertices(self, shape: torch.Tensor, vertex_ids: torch.Tensor | None = None) -> torch.Tensor:
        """shape (B, S) -> (B, V', 3) rest vertices in the model frame."""

    @abc.abstractmethod
    def forward(
        self,
        local_rotations: torch.Tensor,
        root_translation: torch.Tensor,
        shape: torch.Tensor,
        vertex_ids: torch.Tensor | None = None,
        *,
        rest_orientation_shape: torch.Tensor | None = None,
    ) -> BodyOutput:
        """Pose the body.

        local_rotations: (B, J, 3, 3) rotation of each joint in its rest frame.
        root_translation: (B, 3) root offset in the model frame.
        shape: (B, S) shape coefficients.
        vertex_ids: optional (V',) long tensor; only these vertices are skinned (the losses
            need a few thousand of them, and skinning only those is what keeps an
            optimization step cheap).
        rest_orientation_shape: optional (B, S) shape whose bones' rest *orientations* are
            used, without gradient, instead of ``shape``'s (rest positions and vertices still
            follow ``shape``). Bodies whose rest orientations do not depend on the shape
            ignore it. The optimizer's shape stage holds the orientations at the stage's
            starting shape (see ``engine.refine.optimizer.OptimizerConfig.hold_rest_orientations``).
        """
