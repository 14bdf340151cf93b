"""The loss terms. Each is a small typed function ``(LossInputs) -> dict[str, Tensor]``; the
value under the term's own name is the one the optimizer weights, other keys are diagnostics
(not weighted, reported in progress lines and results).

Units, chosen so the paper's weights keep their meaning: contact in metres (sum of minimum
distances, LMM samples weighted 1/N), stay-close in squared radians per joint plus the root
translation in units of ``TRANSLATION_SCALE_M``, shape prior in squared shape coefficients,
2D keypoints in squared pixels (mean over visible keypoints, confidence-weighted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.refine.losses.contact import ContactIndex, contact_value, pair_distances, term_values
from engine.refine.losses.geometry import rotation_angle
from engine.refine.losses.penetration import (
    CapsuleRows,
    PenetrationSetup,
    SurfaceRows,
    penetration_value,
    surface_candidates,
    surface_value,
)

# A 5 cm root shift costs as much as a one-radian joint rotation: without 2D keypoints the
# root translation is what anchors the body, so it must be held much harder than a joint.
TRANSLATION_SCALE_M = 0.01


@dataclass(frozen=True)
class KeypointSetup:
    """2D keypoints and a pinhole camera.

    targets: (N, J, 2) pixels; confidence: (N, J) (0 where a joint has no keypoint).
    world_to_camera: (4, 4), OpenCV camera axes; focal: (2,); principal: (2,).
    """

    targets: torch.Tensor
    confidence: torch.Tensor
    world_to_camera: torch.Tensor
    focal: torch.Tensor
    principal: torch.Tensor


@dataclass(frozen=True)
class LossSetup:
    """Everything static the terms need for one frame.

    joint_weights: (N, J) stay-close weight multipliers per joint (the root's entry weights
        the global orientation); translation_weights: (N,).
    joint_limits: (J,) maximum angle from rest, radians (inf = no limit).
    initial_shape: (N, S).
    shape_unit: the shape change that counts as one unit in the shape prior.
    """

    contact: ContactIndex
    floor_height: float
    joint_weights: torch.Tensor
    translation_weights: torch.Tensor
    joint_limits: torch.Tensor
    initial_shape: torch.Tensor
    shape_unit: float = 1.0
    penetration: PenetrationSetup | None = None
    keypoints: KeypointSetup | None = None


@dataclass(frozen=True)
class LossInputs:
    """The posed people at one iteration.

    vertices: (N, V', 3) posed needed vertices (world); joints: (N, J, 3);
    joint_frames: (N, J, 4, 4); local_rotations: (N, J, 3, 3);
    pose_offsets: (N, J, 3) axis-angle offsets from the initial local rotations;
    translation_offsets: (N, 3) metres; shape: (N, S).
    penetration_candidates: optional vertex-capsule rows to evaluate instead of every pair
        (engine.refine.losses.penetration.penetration_candidates, prepared by capsule_rows).
    surface_candidates: optional rows of the mesh surface test (surface_candidates, prepared
        by surface_rows); found afresh when None.
    """

    setup: LossSetup
    vertices: torch.Tensor
    joints: torch.Tensor
    joint_frames: torch.Tensor
    local_rotations: torch.Tensor
    pose_offsets: torch.Tensor
    translation_offsets: torch.Tensor
    shape: torch.Tensor
    penetration_candidates: CapsuleRows | None = None
    surface_candidates: SurfaceRows | None = None


def contact_term(inputs: LossInputs) -> dict[str, torch.Tensor]:
    """Weighted contact objective (metres)."""
    return {"contact": contact_value(inputs.setup.contact, inputs.vertices, inputs.setup.floor_height)}


def stay_close_term(inputs: LossInputs) -> dict[str, torch.Tensor]:
    """Per-joint squared angle away from the initial pose, per-joint weighted, plus the root
    translation (the root joint's entry is the global orientation)."""
    setup = inputs.setup
    joint_sq = (inputs.pose_offsets * inputs.pose_offsets).sum(-1)  # (N, J)
    weighted = setup.joint_weights * joint_sq
    orientation = weighted[:, 0].sum()
    pose = weighted[:, 1:].sum()
    shift = inputs.translation_offsets / TRANSLATION_SCALE_M
    translation = (setup.translation_weights * (shift * shift).sum(-1)).sum()
    return {
        "stay_close": pose + orientation + translation,
        "stay_close_pose": pose.detach(),
        "stay_close_global_orientation": orientation.detach(),
        "stay_close_root_translation": translation.detach(),
    }


def joint_limits_term(inputs: LossInputs) -> dict[str, torch.Tensor]:
    """Squared excess (radians) of each joint's angle from rest over its anatomical limit."""
    limits = inputs.setup.joint_limits.to(inputs.local_rotations.dtype)
    limited = torch.isfinite(limits)
    rotations = inputs.local_rotations
    # Most iterations have no joint past its limit: find those that are from the trace
    # (angle > limit exactly when cos(angle) = (trace - 1) / 2 < cos(limit)) without
    # gradient, and build the angle's graph only for them.
    with torch.no_grad():
        trace = rotations.diagonal(dim1=-2, dim2=-1).sum(-1)  # (N, J)
        past = limited & ((trace - 1.0) * 0.5 < torch.cos(limits.clamp(max=math.pi)))
    if not bool(past.any()):
        return {"joint_limits": inputs.vertices.new_zeros(())}
    person, joint = past.nonzero(as_tuple=True)
    excess = torch.relu(rotation_angle(rotations[person, joint]) - limits[joint])
    return {"joint_limits": (excess * excess).sum()}


def penetration_term(inputs: LossInputs) -> dict[str, torch.Tensor]:
    """Interpenetration: capsule proxies plus the mesh surface test (see
    engine.refine.losses.penetration)."""
    setup = inputs.setup.penetration
    if setup is None:
        return {"penetration": inputs.vertices.new_zeros(())}
    value, deepest = penetration_value(setup, inputs.vertices, inputs.joint_frames, inputs.penetration_candidates)
    if setup.surface is None:
        return {"penetration": value, "penetration_max_depth_m": deepest}
    candidates = inputs.surface_candidates
    if candidates is None:
        candidates = surface_candidates(setup.surface, inputs.vertices, inputs.joint_frames)
    surface, surface_deepest = surface_value(setup.surface, inputs.vertices, inputs.joint_frames, candidates)
    return {
        "penetration": value + surface,
        "penetration_max_depth_m": deepest,
        "penetration_surface_depth_m": surface_deepest,
    }


def shape_prior_term(inputs: LossInputs) -> dict[str, torch.Tensor]:
    """Squared change of the shape coefficients, in the body's shape units. The prior is the artist's character (the
    initial shape), not the population mean: a refinement must not re-proportion a body."""
    delta = (inputs.shape - inputs.setup.initial_shape.to(inputs.shape.dtype)) / inputs.setup.shape_unit
    return {"shape_prior": (delta * delta).sum()}


def keypoints_2d_term(inputs: LossInputs) -> dict[str, torch.Tensor]:
    """Confidence-weighted mean squared reprojection error of the joints, pixels."""
    setup = inputs.setup.keypoints
    if setup is None:
        return {"keypoints_2d": inputs.vertices.new_zeros(())}
    transform = setup.world_to_camera.to(inputs.joints.dtype)
    camera = inputs.joints @ transform[:3, :3].T + transform[:3, 3]
    depth = camera[..., 2:3].clamp_min(1e-3)
    pixels = camera[..., :2] / depth * setup.focal + setup.principal
    error = ((pixels - setup.targets) ** 2).sum(-1)
    weight = setup.confidence
    return {"keypoints_2d": (weight * error).sum() / weight.sum().clamp_min(1e-6)}


def contact_term_values(setup: LossSetup, vertices: torch.Tensor) -> torch.Tensor:
    """(T,) unweighted value of each contact term (metres), for reporting."""
    if setup.contact.num_terms == 0:
        return vertices.new_zeros(0)
    return term_values(setup.contact, pair_distances(setup.contact, vertices, setup.floor_height))
