"""A tiny synthetic stick-figure body for fast loss and optimizer tests.

It implements the real ``BodyModel`` interface: 16 joints, about 600 vertices sampled on
capsule-like tubes around each bone, each vertex rigidly skinned to one joint, joint rest
frames with identity rotation, model frame = world frame (Z up, forward = -Y). Shape has two
coefficients: overall scale and girth. Regions are analytic: a bone's vertices, split front
(-Y) and back (+Y) for the torso. Small enough that a loss test runs in milliseconds.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from engine.body.base import BodyModel, BodyOutput
from engine.body.regions import MESH_REGIONS, composite_members

# name, parent, rest position (m), tube end offset from the joint (to its child), tube radius
_JOINTS: tuple[tuple[str, int, tuple[float, float, float], tuple[float, float, float], float], ...] = (
    ("pelvis", -1, (0.0, 0.0, 1.0), (0.0, 0.0, 0.25), 0.14),
    ("spine", 0, (0.0, 0.0, 1.25), (0.0, 0.0, 0.25), 0.15),
    ("neck", 1, (0.0, 0.0, 1.5), (0.0, 0.0, 0.08), 0.05),
    ("head", 2, (0.0, 0.0, 1.6), (0.0, 0.0, 0.15), 0.1),
    ("left_shoulder", 1, (0.2, 0.0, 1.45), (0.3, 0.0, 0.0), 0.05),
    ("left_elbow", 4, (0.5, 0.0, 1.45), (0.25, 0.0, 0.0), 0.04),
    ("left_wrist", 5, (0.75, 0.0, 1.45), (0.12, 0.0, 0.0), 0.04),
    ("right_shoulder", 1, (-0.2, 0.0, 1.45), (-0.3, 0.0, 0.0), 0.05),
    ("right_elbow", 7, (-0.5, 0.0, 1.45), (-0.25, 0.0, 0.0), 0.04),
    ("right_wrist", 8, (-0.75, 0.0, 1.45), (-0.12, 0.0, 0.0), 0.04),
    ("left_hip", 0, (0.1, 0.0, 0.95), (0.0, 0.0, -0.45), 0.07),
    ("left_knee", 10, (0.1, 0.0, 0.5), (0.0, 0.0, -0.42), 0.05),
    ("left_ankle", 11, (0.1, 0.0, 0.08), (0.0, -0.15, 0.0), 0.04),
    ("right_hip", 0, (-0.1, 0.0, 0.95), (0.0, 0.0, -0.45), 0.07),
    ("right_knee", 13, (-0.1, 0.0, 0.5), (0.0, 0.0, -0.42), 0.05),
    ("right_ankle", 14, (-0.1, 0.0, 0.08), (0.0, -0.15, 0.0), 0.04),
)

_RINGS = 4
_PER_RING = 9


def _tube(end: np.ndarray, radius: float) -> np.ndarray:
    """Points on a tube from the origin to ``end`` (offsets from the joint)."""
    axis = end / np.linalg.norm(end)
    helper = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    points = []
    for ring in range(_RINGS):
        along = (ring + 0.5) / _RINGS
        for k in range(_PER_RING):
            angle = 2 * np.pi * k / _PER_RING
            points.append(end * along + radius * (np.cos(angle) * u + np.sin(angle) * v))
    return np.asarray(points)


class SyntheticRegions:
    """Region vertex sets of the synthetic body (``vertex_ids``/``subsample`` like the real
    region maps). Every region is small, so the subsample is the whole set."""

    def __init__(self, sets: dict[str, np.ndarray]):
        self._sets = sets

    def vertex_ids(self, region: str) -> np.ndarray:
        members = composite_members(region)
        return np.unique(np.concatenate([self._sets[m] for m in members]))

    def subsample(self, region: str) -> np.ndarray:
        return self.vertex_ids(region)


class SyntheticBody(BodyModel):
    kind = "synthetic"
    joint_names = tuple(j[0] for j in _JOINTS)
    parents = tuple(j[1] for j in _JOINTS)
    shape_names = ("scale", "girth")

    def __init__(self) -> None:
        offsets, owners, radial = [], [], []
        for index, (_, _, _, end, radius) in enumerate(_JOINTS):
            tube = _tube(np.asarray(end, dtype=np.float64), radius)
            axis_points = np.asarray(end) * ((np.arange(_RINGS).repeat(_PER_RING) + 0.5) / _RINGS)[:, None]
            offsets.append(tube)
            radial.append(tube - axis_points)
            owners.append(np.full(len(tube), index))
        self._offsets = torch.tensor(np.concatenate(offsets), dtype=torch.float32)
        self._radial = torch.tensor(np.concatenate(radial), dtype=torch.float32)
        self._owner = torch.tensor(np.concatenate(owners), dtype=torch.long)
        self._rest_joints = torch.tensor([j[2] for j in _JOINTS], dtype=torch.float32)
        self._faces = np.zeros((0, 3), dtype=np.int64)
        self.regions = self._make_regions()

    # --- regions -----------------------------------------------------------------------
    def _bone(self, *names: str) -> np.ndarray:
        idx = [self.joint_names.index(n) for n in names]
        return np.nonzero(np.isin(self._owner.numpy(), idx))[0]

    def _make_regions(self) -> SyntheticRegions:
        rest = self.rest_vertices(self.default_shape()[None])[0].numpy()
        front = rest[:, 1] < 0

        def split(ids: np.ndarray, want_front: bool) -> np.ndarray:
            return ids[front[ids] == want_front]

        pelvis, spine = self._bone("pelvis"), self._bone("spine")
        upper_spine = spine[rest[spine, 2] > 1.4]
        lower_spine = spine[rest[spine, 2] <= 1.4]
        sets = {
            "head": self._bone("head"),
            "neck": self._bone("neck"),
            "chest": split(upper_spine, True),
            "back": split(upper_spine, False),
            "stomach": split(lower_spine, True),
            "waist_front": split(pelvis, True),
            "waist_back": split(pelvis, False),
            "butt": split(pelvis[rest[pelvis, 2] < 1.1], False),
        }
        for side in ("left", "right"):
            shoulder = self._bone(f"{side}_shoulder")
            near = shoulder[np.abs(rest[shoulder, 0]) < 0.35]
            sets[f"{side}_shoulder_front"] = split(near, True)
            sets[f"{side}_shoulder_back"] = split(near, False)
            sets[f"{side}_arm"] = np.concatenate([shoulder[np.abs(rest[shoulder, 0]) >= 0.35], self._bone(f"{side}_elbow")])
            sets[f"{side}_hand"] = self._bone(f"{side}_wrist")
            sets[f"{side}_leg"] = self._bone(f"{side}_hip", f"{side}_knee")
            sets[f"{side}_foot"] = self._bone(f"{side}_ankle")
        assert all(r in sets or composite_members(r) != (r,) for r in MESH_REGIONS)
        return SyntheticRegions(sets)

    # --- BodyModel ---------------------------------------------------------------------
    @property
    def faces(self) -> np.ndarray:
        return self._faces

    @property
    def num_vertices(self) -> int:
        return int(self._offsets.shape[0])

    @property
    def model_to_world(self) -> np.ndarray:
        return np.eye(3)

    @property
    def identity_hash(self) -> str:
        return hashlib.sha256(self._offsets.numpy().tobytes()).hexdigest()[:16]

    def default_shape(self) -> torch.Tensor:
        return torch.zeros(2)

    def skinning_weights(self) -> np.ndarray:
        weights = np.zeros((self.num_vertices, len(self.joint_names)), dtype=np.float32)
        weights[np.arange(self.num_vertices), self._owner.numpy()] = 1.0
        return weights

    def _rest_joint_positions(self, shape: torch.Tensor) -> torch.Tensor:
        scale = 1.0 + 0.1 * shape[:, :1, None]
        return self._rest_joints[None] * scale

    def rest_joint_frames(self, shape: torch.Tensor) -> torch.Tensor:
        positions = self._rest_joint_positions(shape)
        frames = torch.eye(4).repeat(shape.shape[0], len(self.joint_names), 1, 1)
        frames[:, :, :3, 3] = positions
        return frames

    def _rest_offsets(self, shape: torch.Tensor, vertex_ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        offsets, radial, owner = self._offsets, self._radial, self._owner
        if vertex_ids is not None:
            offsets, radial, owner = offsets[vertex_ids], radial[vertex_ids], owner[vertex_ids]
        scale = 1.0 + 0.1 * shape[:, :1, None]
        girth = 0.1 * shape[:, 1:2, None]
        return offsets[None] * scale + radial[None] * girth, owner

    def rest_vertices(self, shape: torch.Tensor, vertex_ids: torch.Tensor | None = None) -> torch.Tensor:
        offsets, owner = self._rest_offsets(shape, vertex_ids)
        return offsets + self._rest_joint_positions(shape)[:, owner]

    def forward(self, local_rotations, root_translation, shape, vertex_ids=None, *, rest_orientation_shape=None) -> BodyOutput:
        # Rest frames are unrotated whatever the shape: rest_orientation_shape changes nothing.
        batch = local_rotations.shape[0]
        rest = self._rest_joint_positions(shape)
        rotations: list[torch.Tensor] = []
        positions: list[torch.Tensor] = []
        for j, parent in enumerate(self.parents):
            if parent < 0:
                rotations.append(local_rotations[:, j])
                positions.append(rest[:, j] + root_translation)
            else:
                rotations.append(rotations[parent] @ local_rotations[:, j])
                offset = (rest[:, j] - rest[:, parent])[..., None]
                positions.append(positions[parent] + (rotations[parent] @ offset)[..., 0])
        global_rot = torch.stack(rotations, 1)
        joints = torch.stack(positions, 1)
        offsets, owner = self._rest_offsets(shape, vertex_ids)
        vertices = (global_rot[:, owner] @ offsets[..., None])[..., 0] + joints[:, owner]
        frames = torch.zeros(batch, len(self.joint_names), 4, 4, dtype=joints.dtype)
        frames[:, :, :3, :3] = global_rot
        frames[:, :, :3, 3] = joints
        frames[:, :, 3, 3] = 1.0
        return BodyOutput(vertices=vertices, joints=joints, joint_frames=frames)
