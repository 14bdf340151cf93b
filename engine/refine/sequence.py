"""Sequence (clip) refinement (issue 20): every frame of a job solved together.

Why not frame by frame: nothing ties neighbouring frames together there, and a refined range
showed the hand jumping 36-41 cm between frames. Here the correction of the whole clip is one
tensor, (F, N, J, 3) axis-angle offsets after each original local rotation plus (F, N, 3) root
shifts, as in the single-frame optimizer (engine.refine.optimizer: zero is the original pose,
each joint's step scaled by its stay-close stiffness). One batched forward poses every solved
frame of every person per step.

- Contact (engine.refine.losses.sequence) on the frames inside each contact's interval; on
  the ease frames the correction is a smoothstep of the ease times a smooth correction (see
  solve_sequence: the contact's pull does not grow with the distance, so an eased weight
  alone closed the contact in the first few ease frames).
- Stay-close to the original on every frame, with the single-frame problem's weights
  (engine.refine.problem.build_problem: the contact limb freer, the standing legs stiffer).
- A temporal term on the correction's velocity and acceleration over the whole clip.
- A sharpness term: no joint may accelerate more sharply than the person's original motion
  ever does (or than the ease itself needs, where a short ease needs more): the correction's
  acceleration must not land on the original's fastest moments.
- Planted feet: foot vertices low and slow in the original keep their positions.
- Frames outside every interval have no variables and come back as the job gave them.

Shape is held as given (the Blender side builds bones for a fixed shape) and the
interpenetration terms are not evaluated (see the report of issue 20: a per-frame candidate
search costs more than the rest of a step; the contact's touch allowance keeps the surfaces
from being pulled into each other).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch

from engine.body.base import BodyModel
from engine.contacts.objective import ContactObjective
from engine.body.regions import region_name
from engine.refine.floor import default_floor
from engine.refine.job import ConstraintDistance, FrameResult, Job, Result
from engine.refine.losses.contact import TOUCH_M, RegionVertices, build_contact_index, needed_contact_vertices
from engine.refine.losses.geometry import rotate_by_axis_angle, rotation_angle
from engine.refine.losses.sequence import (
    SequenceInputs,
    SequenceSetup,
    ease_weights,
    evaluate_sequence,
    frame_pair_distances,
    frame_term_values,
    second_difference,
)
from engine.refine.optimizer import (
    PeopleState,
    Progress,
    RefinementStopped,
    default_weights,
    joint_step_scale,
    contact_still_closing,
    stopped_falling,
)
from engine.refine.problem import LMM_SATURATION_M, PLANTED_HEIGHT_M, BodyStatics, PersonOptions, build_problem, planted_feet


@dataclass(frozen=True)
class SequenceWeights:
    """One weight per term of engine.refine.losses.sequence.SEQUENCE_TERMS. contact,
    stay_close and joint_limits default to the single-frame first stage's (per frame they
    mean the same)."""

    contact: float
    stay_close: float
    joint_limits: float
    # Per frame of the correction's velocity and acceleration before its ease (stay-close
    # units, see engine.refine.losses.sequence.temporal_term). 200x the stay-close weight:
    # on the clip benchmark (tuning seed 0, 100 frames) the largest joint acceleration is
    # 1.20x the original clip's at 100x and 1.17x at 200x, the contact within 4 mm either way.
    temporal: float
    # Per cm^2 of frame-to-frame acceleration of each joint's displacement (joint_motion_term).
    joint_motion: float
    # Per cm^2 (per frame^2) of a joint's acceleration beyond the person's sharpest
    # (engine.refine.losses.sequence.sharpness_term).
    sharpness: float
    # Per frame, per cm^2 of a planted foot's mean displacement: a 1 mm slide costs what 1 cm of
    # open contact does (ten times that made the steps of Adam bounce off the feet).
    planted_feet: float

    def as_dict(self) -> dict[str, float]:
        return {
            "contact": self.contact,
            "stay_close": self.stay_close,
            "joint_limits": self.joint_limits,
            "temporal": self.temporal,
            "planted_feet": self.planted_feet,
            "joint_motion": self.joint_motion,
            "sharpness": self.sharpness,
        }


# Off by default. Clip benchmark, 3 tuning scenes (largest joint acceleration / original's;
# worst contact inside the interval): 0 -> 1.17x, 1.31x, 1.23x, 4 mm; 3 -> 1.00x, 1.31x,
# 1.20x, 6 mm; 10 -> 1.00x, 1.29x, 1.14x but 11 mm; 100 -> contacts 4-7 cm open. At 3 the
# Blender clip test's hand (2-frame eases, 9 frames) stayed 21 cm from its contact, even with
# the ease frames left out of the term: not understood yet, so not on by default.
JOINT_MOTION_WEIGHT = 0.0

# Clip benchmark, 10 tuning clips (largest joint acceleration / original's; contact inside the
# interval within 1 cm): 0 -> 1.16x, 1.37x, 1.29x on the first three and 1.49x, 1.42x on the
# arm around waist and head on shoulder clips; 1000 -> at most 1.15x on all ten, contact
# in 9 of 10 (the head on shoulder 1.25 cm; 0.56 cm at 0), 3000 -> one 1.9 cm contact. An
# allowance of the correction's largest own acceleration (not the ease's need) left one clip
# at 1.23x: one sharp frame where the interval begins let every other frame be as sharp.
SHARPNESS_WEIGHT = 1000.0


def default_sequence_weights(num_people: int) -> SequenceWeights:
    frame = default_weights(num_people)
    stay = frame.stay_close[0]
    return SequenceWeights(
        contact=frame.contact[0],
        stay_close=stay,
        joint_limits=frame.joint_limits[0],
        temporal=200.0 * stay,
        planted_feet=frame.contact[0],
        joint_motion=JOINT_MOTION_WEIGHT,
        sharpness=SHARPNESS_WEIGHT,
    )


@dataclass(frozen=True)
class SequenceConfig:
    weights: SequenceWeights
    learning_rate: float = 0.02
    adam_betas: tuple[float, float] = (0.5, 0.9)
    max_iterations: int = 400
    polish_iterations: int = 100
    early_stop_window: int = 20
    early_stop_slope: float = -1e-4
    early_stop_relative_slope: float = 3e-4
    # As the single-frame stage 1 (engine.refine.optimizer.OptimizerConfig).
    rotation_scale: float = 0.4
    translation_scale: float = 0.005
    # A contact still open by more than this on a frame inside its interval when the loss
    # stops falling relaxes the stay-close weight of the limbs that reach for it by
    # open_contact_relax, at most max_relax_rounds times (as the single-frame optimizer does).
    contact_open_m: float = 0.01
    open_contact_relax: float = 0.3
    max_relax_rounds: int = 3
    # A foot vertex is planted on a frame where the original has it within planted_height_m of
    # the floor and moving less than planted_speed_m per frame horizontally.
    planted_feet: bool = True
    planted_height_m: float = PLANTED_HEIGHT_M
    planted_speed_m: float = 0.005
    # Standard deviation (frames) of the smoothing of the variables (see solve_sequence).
    smoothing_frames: float = 3.0
    seed: int = 0
    progress_every: int = 10


def term_intervals(job: Job, objective: ContactObjective):
    """Each term's interval: the LMM's terms come first in build_objective's order, then one
    term per explicit contact."""
    explicit = job.constraints.explicit
    lmm_count = len(objective.terms) - len(explicit)
    return [job.constraints.lmm_interval] * lmm_count + [c.interval for c in explicit]


def _stack_states(states: list[PeopleState]) -> PeopleState:
    return PeopleState(
        torch.stack([s.local_rotations for s in states]),
        torch.stack([s.root_translation for s in states]),
        torch.stack([s.shape for s in states]),
    )


def _feet_ids(body, regions, objective, first: PeopleState, people: list[PersonOptions]) -> list[tuple[int, np.ndarray]]:
    """(person, foot subsample ids) of the feet no contact needs to move, for the movable
    people (engine.refine.problem.planted_feet with every foot counted as low: lowness is
    decided per frame here)."""
    return planted_feet(body, regions, objective, first, [o.movable for o in people], math.inf)


def solve_sequence(
    job: Job,
    body: BodyModel,
    regions: RegionVertices,
    objective: ContactObjective,
    people_options: list[PersonOptions],
    initial: list[PeopleState],
    config: SequenceConfig,
    floor_height: float | None = None,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[PeopleState, dict]:
    """Solve the clip. Returns the (F, N, ...) refined states (the originals, bit for bit,
    on frames not solved) and a report dict: solved mask, floor, per-frame distances before
    and after (F, T), iterations, losses, warnings, wall time."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    numbers = [frame.frame for frame in job.frames]
    count = len(numbers)
    original = _stack_states(initial)  # (F, N, ...)
    num_people, num_joints = original.local_rotations.shape[1:3]
    if floor_height is None:
        floor_height = default_floor(body, regions, initial[0])
    intervals = term_intervals(job, objective)
    ease = np.stack([ease_weights(numbers, interval) for interval in intervals], axis=1) if intervals else np.zeros((count, 0))
    solved = torch.as_tensor(ease.max(axis=1) > 0 if ease.shape[1] else np.zeros(count, dtype=bool))
    # The stay-close weights, movable joints and limb relaxation of the single-frame problem,
    # set up on the frame where the contacts weigh most.
    key = int(np.argmax(ease.sum(axis=1))) if ease.shape[1] else 0
    statics = BodyStatics(body, initial[key].shape[0])
    problem = build_problem(statics, regions, objective, initial[key], people_options, floor_height=floor_height, penetration=False)

    feet = _feet_ids(body, regions, objective, initial[key], people_options) if config.planted_feet else []
    contact_ids = needed_contact_vertices(objective, regions, num_people) if objective.terms else [np.zeros(0, np.int64)]
    needed = np.unique(np.concatenate(contact_ids + [ids for _, ids in feet] + [np.zeros(1, np.int64)])).astype(np.int64)
    index = build_contact_index(objective, regions, [needed] * num_people, lmm_saturation_m=LMM_SATURATION_M, touch_m=TOUCH_M)
    plain = build_contact_index(objective, regions, [needed] * num_people)
    vertex_ids = torch.as_tensor(needed)

    def posed_both(rotations: torch.Tensor, translations: torch.Tensor, shapes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = rotations.shape[0]
        out = body.forward(
            rotations.reshape(frames * num_people, num_joints, 3, 3),
            translations.reshape(frames * num_people, 3),
            shapes.reshape(frames * num_people, -1),
            vertex_ids,
        )
        return out.vertices.reshape(frames, num_people, len(needed), 3), out.joints.reshape(frames, num_people, -1, 3)

    def posed(rotations: torch.Tensor, translations: torch.Tensor, shapes: torch.Tensor) -> torch.Tensor:
        return posed_both(rotations, translations, shapes)[0]

    with torch.no_grad():
        before_vertices, before_joints = posed_both(original.local_rotations, original.root_translation, original.shape)
        before = frame_term_values(plain, frame_pair_distances(plain, before_vertices, floor_height)) if plain.num_terms else torch.zeros(count, 0)

    rows = torch.zeros(count, num_people, len(needed), dtype=torch.bool)
    if feet:
        heights = before_vertices[..., 2]
        horizontal = before_vertices[..., :2]
        speed = torch.zeros(count, num_people, len(needed))
        if count > 1:
            step = (horizontal[1:] - horizontal[:-1]).norm(dim=-1)
            speed[1:] = step
            speed[:-1] = torch.maximum(speed[:-1], step)
        slow = (heights <= floor_height + config.planted_height_m) & (speed < config.planted_speed_m)
        for person, ids in feet:
            columns = torch.as_tensor(np.searchsorted(needed, ids))
            rows[:, person, columns] = slow[:, person, columns]

    active = torch.nonzero(solved).flatten()
    report: dict = {"solved": solved, "floor_height": floor_height, "before": before, "iterations": (0, 0), "losses": {}, "warnings": []}
    if len(active) == 0:
        report.update(after=before, wall_time_s=time.perf_counter() - started)
        return original, report

    base_rotations = original.local_rotations[active]
    base_translations = original.root_translation[active]
    shapes = original.shape[active].detach()
    with torch.no_grad():
        original_angles = rotation_angle(base_rotations)
    limits = torch.maximum(statics.joint_limits[None, None].expand_as(original_angles), original_angles)
    clip_blend = torch.as_tensor(ease.max(axis=1), dtype=torch.float32)
    setup = SequenceSetup(
        contact=index,
        floor_height=floor_height,
        # The contact pulls only where it must hold: on the ease frames the correction is the
        # ease times one the temporal term keeps close to the interval's (see blend below).
        ease=torch.as_tensor(ease[active.numpy()] >= 1.0, dtype=torch.float32),
        joint_weights=problem.setup.joint_weights,
        translation_weights=problem.setup.translation_weights,
        joint_limits=limits,
        solved=solved,
        planted_rows=rows[active],
        planted_targets=before_vertices[active],
        # Every joint's correction as smooth as the stiffest limb joint's, the root's
        # orientation as its own stay-close weight (see temporal_term).
        blend=clip_blend,
        ease_bend=float(second_difference(clip_blend).abs().max()) if count >= 3 else 0.0,
        clip_joints=before_joints,
        reach_m=float(before[torch.as_tensor(ease >= 1.0)].max()) if plain.num_terms and bool((ease >= 1.0).any()) else 0.0,
        sharpness_limit=second_difference(before_joints).norm(dim=-1).amax(dim=(0, 2)) if count >= 3 else None,
        temporal_joint_weights=torch.maximum(problem.setup.joint_weights, torch.ones_like(problem.setup.joint_weights)),
    )
    joint_scale = joint_step_scale(problem, config.rotation_scale, True)  # (N, J, 1)
    translation_unit = problem.movable_translation.to(torch.float32)[:, None] * config.translation_scale
    pose_variables = torch.zeros(len(active), num_people, num_joints, 3, requires_grad=True)
    translation_variables = torch.zeros(len(active), num_people, 3, requires_grad=True)

    # The variables are smoothed over neighbouring frames before they become the correction
    # (a Gaussian of smoothing_frames, rows summing to one, by frame distance so separate
    # intervals do not blur into each other). Why: with only the temporal term, a weight
    # strong enough to spread the correction over the ease frames left Adam crawling (a
    # 37 cm reach closed by 11 cm in 300 steps); through the smoothing every step moves a
    # neighbourhood of frames together.
    positions = torch.as_tensor([numbers[i] for i in active.tolist()], dtype=torch.float32)
    if config.smoothing_frames > 0:
        kernel = torch.exp(-0.5 * ((positions[:, None] - positions[None, :]) / config.smoothing_frames) ** 2)
        kernel = kernel * ((positions[:, None] - positions[None, :]).abs() <= 3 * config.smoothing_frames)
        kernel = kernel / kernel.sum(dim=1, keepdim=True)
    else:
        kernel = torch.eye(len(active))

    def smoothed(variables: torch.Tensor) -> torch.Tensor:
        return torch.tensordot(kernel, variables, dims=([1], [0]))

    # The correction applied on a frame is its variables' correction times the frame's ease
    # (the largest weight of any term there): the ease curve shapes the correction itself, not
    # only the contact's pull. Why: the contact's pull does not grow with the distance, so a
    # weight eased from 0 to 1 still closed the contact within the first few ease frames (a
    # 37 cm reach in 8 of 25 frames, 5x the clip's largest acceleration).
    blend = torch.as_tensor(ease.max(axis=1)[active.numpy()], dtype=torch.float32)

    def inputs_now(current: SequenceSetup) -> SequenceInputs:
        raw_offsets = smoothed(pose_variables) * joint_scale[None]
        raw_shifts = smoothed(translation_variables) * translation_unit[None]
        offsets = blend[:, None, None, None] * raw_offsets
        shifts = blend[:, None, None] * raw_shifts
        rotations = rotate_by_axis_angle(base_rotations, offsets)
        vertices, joints = posed_both(rotations, base_translations + shifts, shapes)
        full_offsets = torch.zeros(count, num_people, num_joints, 3).index_put((active,), offsets)
        full_shifts = torch.zeros(count, num_people, 3).index_put((active,), shifts)
        return SequenceInputs(current, vertices, rotations, full_offsets, full_shifts, raw_offsets, raw_shifts, joints)

    weights = config.weights.as_dict()
    current = setup
    relax_rounds = 0
    inside = torch.as_tensor(ease[active.numpy()] >= 1.0)  # (F', T): frames where a term must hold
    reaching = problem.must_close_joints.any(dim=0) if problem.must_close_joints is not None and len(problem.must_close_joints) else None
    done: list[int] = []
    values: dict[str, torch.Tensor] = {}
    best = (math.inf, pose_variables.detach().clone(), translation_variables.detach().clone())
    # Stage 2 polishes at a tenth of the rate: Adam's steps at the first rate leave the
    # freest joints (fingers) jittering by a few millimetres from frame to frame.
    stages = ((config.learning_rate, config.max_iterations), (config.learning_rate * 0.1, config.polish_iterations))
    for stage, (rate, limit) in enumerate(stages):
        if limit == 0:
            done.append(0)
            continue
        optimizer = torch.optim.Adam([pose_variables, translation_variables], lr=rate, betas=config.adam_betas)
        history: list[float] = []
        contact_history: list[float] = []
        best = (math.inf, pose_variables.detach().clone(), translation_variables.detach().clone())
        done.append(0)
        for iteration in range(1, limit + 1):
            if should_stop is not None and should_stop():
                raise RefinementStopped("refinement stopped")
            optimizer.zero_grad(set_to_none=True)
            inputs = inputs_now(current)
            loss, values = evaluate_sequence(inputs, weights)
            if not torch.isfinite(loss):
                report["warnings"].append(f"stage {stage + 1}: non-finite loss at iteration {iteration}; kept the best state so far")
                break
            loss.backward()
            value = float(loss.detach())
            if value < best[0]:
                best = (value, pose_variables.detach().clone(), translation_variables.detach().clone())
            optimizer.step()
            done[-1] = iteration
            history.append(value)
            if "contact" in values:
                contact_history.append(float(values["contact"].detach()))
            if progress is not None and (iteration % config.progress_every == 0 or iteration == 1):
                progress(Progress(stage + 1, iteration, limit, {"total": value, **{k: float(v.detach()) for k, v in values.items()}}))
            # As the single-frame optimizer: a contact still closing keeps the solve going even
            # where the total is flat (the stay-close and temporal terms grow as it closes).
            if stopped_falling(
                history, config.early_stop_window, config.early_stop_slope, config.early_stop_relative_slope
            ) and not contact_still_closing(contact_history, config.early_stop_window, config.early_stop_slope, config.contact_open_m):
                if stage == 0 and relax_rounds < config.max_relax_rounds and reaching is not None and bool(inside.any()):
                    with torch.no_grad():
                        open_now = frame_term_values(plain, frame_pair_distances(plain, inputs.vertices.detach(), floor_height))
                    if bool(((open_now > config.contact_open_m) & inside).any()):
                        # As the single-frame optimizer: the loss changes, the window and best start afresh.
                        relax_rounds += 1
                        factor = torch.where(reaching, config.open_contact_relax, 1.0)
                        current = replace(current, joint_weights=current.joint_weights * factor)
                        history.clear()
                        contact_history.clear()
                        best = (math.inf, pose_variables.detach().clone(), translation_variables.detach().clone())
                        continue
                break
        with torch.no_grad():
            pose_variables.copy_(best[1])
            translation_variables.copy_(best[2])
    with torch.no_grad():
        inputs = inputs_now(setup)
        _, final_values = evaluate_sequence(inputs, weights)
        after_active = frame_term_values(plain, frame_pair_distances(plain, inputs.vertices, floor_height)) if plain.num_terms else None
        rotations = original.local_rotations.clone()
        translations = original.root_translation.clone()
        rotations[active] = inputs.local_rotations
        translations[active] = base_translations + inputs.translation_offsets[active]
    after = before.clone()
    if after_active is not None:
        after[active] = after_active
    report.update(
        after=after,
        iterations=tuple(done),
        relax_rounds=relax_rounds,
        losses={k: float(v) for k, v in final_values.items()},
        planted_rows=rows,
        wall_time_s=time.perf_counter() - started,
    )
    return PeopleState(rotations, translations, original.shape), report


def sequence_config(job: Job) -> SequenceConfig:
    return SequenceConfig(
        weights=default_sequence_weights(len(job.people)),
        max_iterations=job.options.sequence_iterations,
        planted_feet=job.options.planted_feet,
        seed=job.options.seed,
        progress_every=job.options.progress_every,
    )


def run_sequence_job(
    job: Job,
    body: BodyModel,
    regions: RegionVertices,
    objective: ContactObjective,
    people_options: list[PersonOptions],
    initial: list[PeopleState],
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[list[FrameResult], float, list[str]]:
    """The job's frames as results (engine.refine.run.run_job dispatches here), the floor,
    and the solve's warnings. Frames not solved are the job's own poses, untouched."""
    from engine.refine.run import poses_from_state

    state, report = solve_sequence(
        job, body, regions, objective, people_options, initial, sequence_config(job), job.options.floor_height, progress, should_stop
    )
    movable = tuple(s.movable for s in job.people)
    frames = []
    share = report["wall_time_s"] / max(1, len(job.frames))
    for f, frame in enumerate(job.frames):
        solved = bool(report["solved"][f])
        people = (
            poses_from_state(
                body,
                PeopleState(state.local_rotations[f], state.root_translation[f], state.shape[f]),
                frame.people,
                movable,
                shape_optimized=False,
            )
            if solved
            else frame.people
        )
        frames.append(
            FrameResult(
                frame=frame.frame,
                people=people,
                constraints=tuple(
                    ConstraintDistance(term.label, term.source, term.weight, float(report["before"][f, t]), float(report["after"][f, t]))
                    for t, term in enumerate(objective.terms)
                ),
                losses=dict(report["losses"]) if solved else {},
                iterations=tuple(report["iterations"]) if solved else (0, 0),
                wall_time_s=share,
                backed_off=objective.backed_off,
                warnings=tuple(report["warnings"]) if solved else (),
            )
        )
    return frames, report["floor_height"], list(report["warnings"])
