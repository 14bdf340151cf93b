"""Loss terms of the sequence (clip) solve (issue 20, engine.refine.sequence).

Every tensor has a leading frame dimension: the F' frames being solved (those with some
contact weight), N people each. Like ``engine.refine.losses.terms``, each term is a small
typed function ``(SequenceInputs) -> dict[str, Tensor]`` whose value under its own name is
weighted; other keys are diagnostics. The contact objective is the single-frame one
(``engine.refine.losses.contact``: options, alternatives, touch allowance, the LMM rows'
saturation), evaluated on every frame at once and weighted per frame and term
(``SequenceSetup.ease``: 1 on the frames of the term's interval, 0 elsewhere; the ease frames'
correction is shaped by engine.refine.sequence, not by this weight).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from engine.refine.job import ContactInterval
from engine.refine.losses.contact import _FAR, ContactIndex, _flat_rows, saturate
from engine.refine.losses.geometry import rotation_angle
from engine.refine.losses.terms import TRANSLATION_SCALE_M


def smoothstep(x: np.ndarray) -> np.ndarray:
    """3x^2 - 2x^3 on [0, 1]: zero slope at both ends, so a weight (and the correction it
    drives) starts and stops growing without a kink."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def ease_weights(frames: Sequence[int], interval: ContactInterval | None) -> np.ndarray:
    """(F,) weight of a contact on each frame: 1 from ``start`` to ``end``, a smoothstep from 0
    (ease_in frames before start, where it is exactly 0) up to 1 at start and back down to 0
    ease_out frames after end; 0 elsewhere. No interval: 1 on every frame."""
    numbers = np.asarray(frames, dtype=np.float64)
    if interval is None:
        return np.ones(len(numbers))
    weights = ((numbers >= interval.start) & (numbers <= interval.end)).astype(np.float64)
    if interval.ease_in > 0:
        rising = (numbers < interval.start) & (numbers > interval.start - interval.ease_in)
        weights[rising] = smoothstep((numbers[rising] - (interval.start - interval.ease_in)) / interval.ease_in)
    if interval.ease_out > 0:
        falling = (numbers > interval.end) & (numbers < interval.end + interval.ease_out)
        weights[falling] = smoothstep(((interval.end + interval.ease_out) - numbers[falling]) / interval.ease_out)
    return weights


def frame_pair_distances(index: ContactIndex, vertices: torch.Tensor, floor_height: float) -> torch.Tensor:
    """(F, N, V', 3) posed needed vertices -> (F, P) minimum distance of every region pair on
    every frame. As ``engine.refine.losses.contact.pair_distances``: the nearest vertex pair is
    found without gradient, then only those distances are recomputed with it."""
    frames, _, count = vertices.shape[:3]
    if not index.pairs:
        return vertices.new_zeros(frames, 0)
    rows_a, rows_b, flat_a, flat_b, padding_a, padding_b, _ = _flat_rows(index, count)
    flat = vertices.reshape(frames, -1, 3)
    num_pairs, width_a = rows_a.shape
    with torch.no_grad():
        detached = flat.detach()
        points_a = detached[:, flat_a].reshape(frames, num_pairs, width_a, 3)
        points_b = detached[:, flat_b].reshape(frames, num_pairs, rows_b.shape[1], 3)
        gaps = torch.cdist(points_a.reshape(-1, width_a, 3), points_b.reshape(-1, rows_b.shape[1], 3))
        gaps = gaps.reshape(frames, num_pairs, width_a, -1)
        gaps = gaps.masked_fill(padding_a[None, :, :, None] | padding_b[None, :, None, :], _FAR)
        best = gaps.reshape(frames, num_pairs, -1).argmin(dim=2)  # (F, P)
        slot_a, slot_b = best // rows_b.shape[1], best % rows_b.shape[1]
        pair = torch.arange(num_pairs)[None].expand(frames, -1)
        heights = points_a[..., 2].masked_fill(padding_a[None], _FAR)
        lowest = rows_a[pair, heights.argmin(dim=2)]
        nearest_a = torch.where(index.is_ground[None], lowest, rows_a[pair, slot_a])
        nearest_b = rows_b[pair, slot_b]
    frame = torch.arange(frames)[:, None]
    points = flat[frame, nearest_a]  # (F, P, 3)
    other = flat[frame, nearest_b]
    gap = points - other
    nearest = torch.sqrt((gap * gap).sum(-1) + 1e-12)
    heights = (points[..., 2] - floor_height).abs()
    return torch.where(index.is_ground[None], heights, nearest)


def frame_term_values(index: ContactIndex, distances: torch.Tensor) -> torch.Tensor:
    """(F, P) pair distances -> (F, T) term values: min over options of the sum over rows of
    the min over alternatives (``engine.refine.losses.contact.term_values`` per frame)."""
    rows = distances[:, index.row_pairs].masked_fill(~index.row_mask[None], _FAR)  # (F, R, A)
    row_values = rows.amin(dim=2)
    options = (row_values[:, index.option_rows] * index.option_mask[None]).sum(dim=2)  # (F, O)
    return options[:, index.term_options].masked_fill(~index.term_mask[None], _FAR).amin(dim=2)


def frame_contact_values(index: ContactIndex, vertices: torch.Tensor, floor_height: float) -> torch.Tensor:
    """(F, T) each term's value in the loss (touch allowance, LMM rows saturated), unweighted."""
    if index.num_terms == 0:
        return vertices.new_zeros(vertices.shape[0], 0)
    distances = frame_pair_distances(index, vertices, floor_height)
    if index.touch_m > 0.0:
        distances = (distances - index.touch_m).clamp(min=0.0)
    plain = frame_term_values(index, distances)
    scales = index.term_saturation
    if scales is None or not bool((scales > 0).any()):
        return plain
    robust = frame_term_values(index, saturate(distances, float(scales.max())))
    return torch.where(scales[None] > 0, robust, plain)


@dataclass(frozen=True)
class SequenceSetup:
    """Everything static the sequence terms need.

    contact: the objective's index over the needed vertices; ease: (F', T) weight of each term
        on each solved frame (the solver passes 1 inside the term's interval, 0 elsewhere;
        the term's own weight is in the index).
    joint_weights: (N, J) stay-close multipliers (engine.refine.problem); translation_weights (N,).
    joint_limits: (F', N, J) largest allowed angle from rest: the rig's limit, or the original
        pose's angle where the original is already past it (the fix must not pull a
        mocap pose back inside a limit it breaks on purpose).
    solved: (F,) bool, which of the clip's frames have variables (the others are held at a
        zero correction, so the temporal terms ease into and out of them).
    planted_rows: (F', N, V') bool, foot vertices that are low and slow in the original;
        planted_targets: (F', N, V', 3) their original positions.
    """

    contact: ContactIndex
    floor_height: float
    ease: torch.Tensor
    joint_weights: torch.Tensor
    translation_weights: torch.Tensor
    joint_limits: torch.Tensor
    solved: torch.Tensor
    planted_rows: torch.Tensor
    planted_targets: torch.Tensor
    # (N, J) weight of each joint's correction in the temporal term (see temporal_term).
    temporal_joint_weights: torch.Tensor | None = None
    # (F,) the ease of the correction on every frame of the clip (0 where not solved), and
    # its sharpest bend (largest absolute second difference, sharpness_term).
    blend: torch.Tensor | None = None
    ease_bend: float = 0.0
    # (F, N, J, 3) the original joint positions of every frame of the clip (joint_motion_term,
    # sharpness_term), and (N,) the largest frame-to-frame joint acceleration (m per frame^2)
    # of each person's original motion (sharpness_term).
    clip_joints: torch.Tensor | None = None
    sharpness_limit: torch.Tensor | None = None
    # The largest distance (m) a contact must close on the frames where it holds, in the
    # original: how far the ease must carry the reach at least (sharpness_term).
    reach_m: float = 0.0


@dataclass(frozen=True)
class SequenceInputs:
    """The posed clip at one iteration: vertices (F', N, V', 3) and local_rotations
    (F', N, J, 3, 3) of the solved frames; pose_offsets (F, N, J, 3) radians and
    translation_offsets (F, N, 3) metres over the whole clip (zero on frames not solved)."""

    setup: SequenceSetup
    vertices: torch.Tensor
    local_rotations: torch.Tensor
    pose_offsets: torch.Tensor
    translation_offsets: torch.Tensor
    # (F', N, J, 3) and (F', N, 3): the correction of each solved frame before its ease
    # (engine.refine.sequence); the temporal term smooths these when given.
    raw_pose_offsets: torch.Tensor | None = None
    raw_translation_offsets: torch.Tensor | None = None
    # (F', N, J, 3) posed joint positions of the solved frames.
    joints: torch.Tensor | None = None


def sequence_contact_term(inputs: SequenceInputs) -> dict[str, torch.Tensor]:
    """Sum over frames of the ease-weighted contact objective (metres)."""
    setup = inputs.setup
    values = frame_contact_values(setup.contact, inputs.vertices, setup.floor_height)
    if values.shape[1] == 0:
        return {"contact": inputs.vertices.new_zeros(())}
    weighted = values * setup.ease * setup.contact.term_weights[None].to(values.dtype)
    return {"contact": weighted.sum(), "contact_worst_m": values.detach().amax()}


def sequence_stay_close_term(inputs: SequenceInputs) -> dict[str, torch.Tensor]:
    """Sum over frames of the single-frame stay-close term (engine.refine.losses.terms)."""
    setup = inputs.setup
    joint = setup.joint_weights[None] * (inputs.pose_offsets * inputs.pose_offsets).sum(-1)
    shift = inputs.translation_offsets / TRANSLATION_SCALE_M
    translation = setup.translation_weights[None] * (shift * shift).sum(-1)
    return {"stay_close": joint.sum() + translation.sum()}


def second_difference(values: torch.Tensor) -> torch.Tensor:
    """(F, ...) -> (F - 2, ...): frame-to-frame acceleration along the first dimension."""
    return values[2:] - 2 * values[1:-1] + values[:-2]


def _clip_joints(inputs: SequenceInputs) -> torch.Tensor:
    """(F, N, J, 3) joint positions of every frame of the clip: posed on the solved frames,
    the original's elsewhere."""
    setup = inputs.setup
    return setup.clip_joints.index_put((torch.nonzero(setup.solved).flatten(),), inputs.joints)


def _differences(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    velocity = values[1:] - values[:-1]
    return velocity, velocity[1:] - velocity[:-1]


def temporal_term(inputs: SequenceInputs) -> dict[str, torch.Tensor]:
    """Frame-to-frame velocity and acceleration of the correction (joint rotation offsets
    and the root's translation in stay-close units): of the correction before its ease
    (SequenceInputs.raw_pose_offsets) when given, so that the eased correction is the ease
    curve times a smooth correction; else of the applied one over the whole clip.
    Joints are weighted by SequenceSetup.temporal_joint_weights, not by their stay-close
    weights: a joint the contact frees (a finger, the reaching arm) has a small stay-close
    weight, and weighted by it the fingers of a reaching hand jittered by centimetres from
    frame to frame.
    Value: the acceleration only (the velocity is reported): a velocity term's optimum is a
    linear ramp, whose kink where it meets the untouched frames was the largest acceleration
    of the benchmark's clip (28 mm/frame^2 against the original's 6)."""
    setup = inputs.setup
    pose = inputs.pose_offsets if inputs.raw_pose_offsets is None else inputs.raw_pose_offsets
    shift = inputs.translation_offsets if inputs.raw_translation_offsets is None else inputs.raw_translation_offsets
    if pose.shape[0] < 3:
        return {"temporal": inputs.vertices.new_zeros(())}
    pose_velocity, pose_acceleration = _differences(pose)
    shift_velocity, shift_acceleration = _differences(shift / TRANSLATION_SCALE_M)
    weights = (setup.joint_weights if setup.temporal_joint_weights is None else setup.temporal_joint_weights)[None]
    velocity = (weights * pose_velocity.square().sum(-1)).sum() + (setup.translation_weights[None] * shift_velocity.square().sum(-1)).sum()
    acceleration = (weights * pose_acceleration.square().sum(-1)).sum() + (
        setup.translation_weights[None] * shift_acceleration.square().sum(-1)
    ).sum()
    # Of the correction before its ease, the velocity counts too: its optimum is a constant
    # correction over the ease frames (the acceleration alone let it run linearly from the
    # opposite direction, a 4 cm detour before the reach).
    value = acceleration if inputs.raw_pose_offsets is None else acceleration + velocity
    return {
        "temporal": value,
        "temporal_velocity": velocity.detach(),
        "temporal_acceleration": acceleration.detach(),
    }


def joint_motion_term(inputs: SequenceInputs) -> dict[str, torch.Tensor]:
    """Squared frame-to-frame acceleration (cm per frame^2) of how far the correction moves
    each joint, summed over joints and frames (frames not solved move nothing). Why, beside
    the temporal term on the rotation offsets: a constant offset of a shoulder on an arm
    that the original swings changes the hand's path, and on the clip benchmark the largest
    joint acceleration was 1.3x the original's where the original moved fastest."""
    setup = inputs.setup
    if inputs.joints is None or setup.clip_joints is None:
        return {"joint_motion": inputs.vertices.new_zeros(())}
    moved = (_clip_joints(inputs) - setup.clip_joints) * 100.0  # (F, N, J, 3), 0 where not solved
    acceleration = second_difference(moved).square().sum(dim=(1, 2, 3))
    if setup.blend is not None:
        # Weighted by the smallest ease of the three frames: the ease frames' timing is the
        # artist's (a 2-frame ease must reach in 2 frames), this term smooths the rest.
        blend = setup.blend.to(acceleration.dtype)
        acceleration = acceleration * torch.minimum(torch.minimum(blend[2:], blend[1:-1]), blend[:-2])
    return {"joint_motion": acceleration.sum()}


def sharpness_term(inputs: SequenceInputs) -> dict[str, torch.Tensor]:
    """Squared excess (cm per frame^2, summed over joints and frames) of the result's
    frame-to-frame joint accelerations over the sharpest of the person's original motion
    (SequenceSetup.sharpness_limit) or, where larger, what the ease itself needs to carry the
    joint (the ease curve's sharpest bend times the joint's displacement where the correction
    is whole, at least the contact's opening there). Why a limit and not all acceleration: the ease's own acceleration is the
    artist's timing (a 2-frame ease must reach in 2 frames), but where the correction's
    acceleration lands on the original's fastest moments the two add up into a pop sharper
    than anything in the clip (on the clip benchmark the largest joint acceleration was up to
    1.49x the original's, at a fingertip where an ease met the original's own swing)."""
    setup = inputs.setup
    if inputs.joints is None or setup.clip_joints is None or setup.sharpness_limit is None or setup.solved.shape[0] < 3:
        return {"sharpness": inputs.vertices.new_zeros(())}
    joints = _clip_joints(inputs)
    acceleration = second_difference(joints).norm(dim=-1)  # (F - 2, N, J)
    limit = setup.sharpness_limit[:, None]  # (N, 1)
    if setup.blend is not None:
        with torch.no_grad():
            full = setup.blend >= 1.0
            # What the ease itself needs: its sharpest bend times how far each joint moves
            # where the correction is whole, or at least how far the contact was open there
            # (the artist's timing, not a pop to smooth away; without the floor the allowance
            # started at zero with the correction and held a 2-frame ease's reach 17 cm short).
            moved = (joints[full] - setup.clip_joints[full]).norm(dim=-1).amax(dim=0) if bool(full.any()) else joints.new_zeros(joints.shape[1:3])
            limit = torch.maximum(limit, setup.ease_bend * moved.clamp(min=setup.reach_m))  # (N, J)
    excess = torch.relu(acceleration - limit[None]) * 100.0
    return {"sharpness": excess.square().sum(), "sharpness_worst_cm": excess.detach().amax()}


def planted_feet_term(inputs: SequenceInputs) -> dict[str, torch.Tensor]:
    """Squared displacement (cm^2) of the planted foot vertices from where they were, mean per
    frame over its planted vertices, summed over frames."""
    setup = inputs.setup
    rows = setup.planted_rows
    if not bool(rows.any()):
        return {"planted_feet": inputs.vertices.new_zeros(())}
    moved = ((inputs.vertices - setup.planted_targets) * 100.0).square().sum(-1)  # (F', N, V')
    counts = rows.sum(dim=(1, 2)).clamp(min=1)
    per_frame = (moved * rows).sum(dim=(1, 2)) / counts
    return {"planted_feet": per_frame.sum(), "planted_feet_worst_cm": (moved * rows).detach().amax().sqrt()}


def sequence_joint_limits_term(inputs: SequenceInputs) -> dict[str, torch.Tensor]:
    """Squared excess (radians) of each joint's angle over its limit (SequenceSetup.joint_limits)."""
    limits = inputs.setup.joint_limits
    limited = torch.isfinite(limits)
    if not bool(limited.any()):
        return {"joint_limits": inputs.vertices.new_zeros(())}
    angles = rotation_angle(inputs.local_rotations[limited])
    excess = torch.relu(angles - limits[limited])
    return {"joint_limits": (excess * excess).sum()}


SequenceTerm = Callable[[SequenceInputs], dict[str, torch.Tensor]]

SEQUENCE_TERMS: dict[str, SequenceTerm] = {
    "contact": sequence_contact_term,
    "stay_close": sequence_stay_close_term,
    "joint_limits": sequence_joint_limits_term,
    "temporal": temporal_term,
    "planted_feet": planted_feet_term,
    "joint_motion": joint_motion_term,
    "sharpness": sharpness_term,
}


def evaluate_sequence(inputs: SequenceInputs, weights: dict[str, float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted total and every named value; terms with weight 0 are skipped."""
    total = inputs.vertices.new_zeros(())
    values: dict[str, torch.Tensor] = {}
    for name, weight in weights.items():
        if name not in SEQUENCE_TERMS:
            raise KeyError(f"unknown sequence loss term {name!r}; known terms: {', '.join(SEQUENCE_TERMS)}")
        if weight == 0.0:
            continue
        named = SEQUENCE_TERMS[name](inputs)
        values.update(named)
        total = total + weight * named[name]
    if not math.isfinite(float(total.detach())):
        values["non_finite"] = total.detach()
    return total, values
