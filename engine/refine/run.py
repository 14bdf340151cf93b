"""Run a refinement :class:`~engine.refine.job.Job` in-process and produce its
:class:`~engine.refine.job.Result` (``engine.commands.refine`` adds files, progress lines and
signals around this)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from engine.body.base import BodyModel
from engine.refine.floor import GroundRow, default_floor, far_ground_rows
from engine.refine.job import ConstraintDistance, FrameResult, Job, PersonPose, Result, non_finite_field
from engine.refine.losses.contact import RegionVertices
from engine.refine.losses.geometry import matrix_to_quaternion, quaternion_to_matrix
from engine.refine.metrics import constraint_distances
from engine.contacts.objective import ContactObjective, ContactTerm
from engine.refine.optimizer import (
    Correction,
    OptimizerConfig,
    PeopleState,
    Progress,
    RefineProblem,
    default_weights,
    refine,
)
from engine.refine.problem import BodyStatics, Keypoints, PersonOptions, build_problem


class JobError(ValueError):
    """The job cannot run as written (unknown joint, wrong shape length, unusable contact)."""


@dataclass(frozen=True)
class FrameProgress:
    index: int  # 0-based position in the job's frames
    frame: int  # the frame number
    progress: Progress


def build_objective(job: Job) -> ContactObjective:
    """The LMM part (``engine.contacts.constraints.objective_from_samples``) plus the artist's
    explicit contacts (``engine.contacts.constraints.artist_term``)."""
    from engine.contacts.constraints import ParsedSample, artist_term, objective_from_samples

    spec = job.constraints
    num_people = len(job.people)
    try:
        samples = [ParsedSample.from_dict(sample) for sample in spec.lmm_samples]
    except (KeyError, TypeError, ValueError) as error:
        raise JobError(f"constraints.lmm_samples: a sample is not in the contacts-file form ({error})") from None
    lmm = ContactObjective(terms=())
    if samples:
        lmm = objective_from_samples(
            samples,
            num_people,
            min_samples=spec.min_samples,
            empty_backoff=spec.empty_backoff,
            disabled=frozenset(spec.disabled),
            lmm_weight=spec.lmm_weight,
        )
    artist: list[ContactTerm] = []
    for i, contact in enumerate(spec.explicit):
        try:
            artist.append(artist_term(contact.person_a, contact.region_a, contact.person_b, contact.region_b, contact.weight))
        except ValueError as error:
            raise JobError(f"constraints.explicit[{i}]: {error}") from None
    return ContactObjective(terms=lmm.terms + tuple(artist), backed_off=lmm.backed_off, notes=lmm.notes, agreed=lmm.agreed)


def people_state(body: BodyModel, poses: tuple[PersonPose, ...], where: str) -> PeopleState:
    """Job poses -> (N, J, 3, 3) local rotations, (N, 3) translations, (N, S) shapes."""
    num_joints = len(body.joint_names)
    index = {name: j for j, name in enumerate(body.joint_names)}
    rotations = torch.eye(3).repeat(len(poses), num_joints, 1, 1)
    shapes = []
    for p, pose in enumerate(poses):
        unknown = sorted(set(pose.rotations) - set(index))
        if unknown:
            raise JobError(
                f"{where}.people[{p}].rotations: unknown joint(s) {unknown} for the {body.kind} body "
                f"(its joints are e.g. {', '.join(body.joint_names[:5])}, ...)"
            )
        if pose.rotations:
            names = list(pose.rotations)
            quaternions = torch.tensor([pose.rotations[n] for n in names], dtype=torch.float32)
            rotations[p, [index[n] for n in names]] = quaternion_to_matrix(quaternions)
        if pose.shape:
            if len(pose.shape) != len(body.shape_names):
                raise JobError(
                    f"{where}.people[{p}].shape: {len(pose.shape)} values, the {body.kind} body has "
                    f"{len(body.shape_names)} ({', '.join(body.shape_names)})"
                )
            shapes.append(torch.tensor(pose.shape, dtype=torch.float32))
        else:
            shapes.append(body.default_shape().to(torch.float32))
    translations = torch.tensor([pose.root_translation for pose in poses], dtype=torch.float32)
    return PeopleState(rotations, translations, torch.stack(shapes))


def poses_from_state(
    body: BodyModel,
    state: PeopleState,
    originals: tuple[PersonPose, ...],
    movable: tuple[bool, ...],
    shape_optimized: bool = True,
) -> tuple[PersonPose, ...]:
    """Refined poses in the job's form, every joint listed; a fixed person, and a shape that
    was not optimized, are written back exactly as given (no float32 round trip)."""
    quaternions = matrix_to_quaternion(state.local_rotations)
    out = []
    for p, original in enumerate(originals):
        if not movable[p]:
            out.append(original)
            continue
        out.append(
            PersonPose(
                shape=tuple(float(v) for v in state.shape[p]) if shape_optimized else original.shape,
                rotations={name: tuple(float(v) for v in quaternions[p, j]) for j, name in enumerate(body.joint_names)},
                root_translation=tuple(float(v) for v in state.root_translation[p]),
                keypoints_2d=original.keypoints_2d,
            )
        )
    return tuple(out)


def _keypoints(job: Job, body: BodyModel, poses: tuple[PersonPose, ...], where: str) -> Keypoints | None:
    camera = job.options.camera
    if camera is None or not any(p.keypoints_2d for p in poses):
        return None
    index = {name: j for j, name in enumerate(body.joint_names)}
    targets = torch.zeros(len(poses), len(index), 2)
    confidence = torch.zeros(len(poses), len(index))
    for p, pose in enumerate(poses):
        for name, (u, v, c) in pose.keypoints_2d.items():
            if name not in index:
                raise JobError(f"{where}.people[{p}].keypoints_2d: unknown joint {name!r} for the {body.kind} body")
            targets[p, index[name]] = torch.tensor([u, v])
            confidence[p, index[name]] = c
    return Keypoints(
        targets=targets,
        confidence=confidence,
        world_to_camera=torch.tensor(camera.world_to_camera, dtype=torch.float32),
        focal=torch.tensor(camera.focal_length_px, dtype=torch.float32),
        principal=torch.tensor(camera.principal_point_px, dtype=torch.float32),
    )


def optimizer_config(job: Job) -> OptimizerConfig:
    try:
        weights = default_weights(len(job.people)).with_overrides(dict(job.options.weights))
        return OptimizerConfig(
            weights=weights,
            max_iterations=job.options.iterations,
            seed=job.options.seed,
            progress_every=job.options.progress_every,
            # The paper's schedule moves the shape in stage 1 only.
            optimize_shape=(job.options.optimize_shape, False),
        )
    except ValueError as error:
        raise JobError(f"options: {error}") from None


def _distances(problem: RefineProblem, state: PeopleState) -> list[float]:
    with torch.no_grad():
        output = problem.body.forward(state.local_rotations, state.root_translation, state.shape, problem.vertex_ids)
    return constraint_distances(problem.setup.contact, output.vertices, problem.setup.floor_height)


def run_job(
    job: Job,
    body: BodyModel,
    regions: RegionVertices,
    progress: Callable[[FrameProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Result:
    """Refine every frame of ``job`` in order; raises JobError for a job that cannot run and
    engine.refine.optimizer.RefinementStopped when ``should_stop`` fires."""
    started = time.perf_counter()
    objective = build_objective(job)
    config = optimizer_config(job)
    people_options = []
    for p, settings in enumerate(job.people):
        people_options.append(
            PersonOptions(movable=settings.movable, pinned_joints=settings.pinned_joints, joint_weights=dict(settings.joint_weights))
        )
    statics: BodyStatics | None = None
    correction: Correction | None = None
    frames: list[FrameResult] = []
    job_warnings: list[str] = list(objective.notes)
    if not objective.terms:
        job_warnings.append("no contact constraint to satisfy: the refinement only applies the priors")
    if job.is_sequence:
        return _run_sequence(job, body, regions, objective, people_options, job_warnings, started, progress, should_stop)
    floor_height = job.options.floor_height
    far_from_floor: dict[GroundRow, list[tuple[int, float]]] = {}
    for index, frame in enumerate(job.frames):
        where = f"frames[{index}]"
        initial = people_state(body, frame.people, where)
        if statics is None:
            statics = BodyStatics(body, initial.shape[0])
        if floor_height is None:
            # Where the bodies stand: the lowest foot point of the first frame (engine.refine.floor).
            floor_height = default_floor(body, regions, initial)
        for row, gap in far_ground_rows(body, regions, initial, objective, floor_height):
            far_from_floor.setdefault(row, []).append((frame.frame, gap))
        try:
            problem = build_problem(
                statics,
                regions,
                objective,
                initial,
                people_options,
                floor_height=floor_height,
                keypoints=_keypoints(job, body, frame.people, where),
            )
        except ValueError as error:
            raise JobError(str(error)) from None
        before = _distances(problem, initial)

        def report(step: Progress, index: int = index, number: int = frame.frame) -> None:
            if progress is not None:
                progress(FrameProgress(index, number, step))

        outcome = refine(
            problem,
            config,
            progress=report,
            should_stop=should_stop,
            warm_start=correction if job.options.warm_start else None,
        )
        correction = outcome.correction
        after = _distances(problem, outcome.state)
        frame_result = FrameResult(
                frame=frame.frame,
                people=poses_from_state(
                    body,
                    outcome.state,
                    frame.people,
                    tuple(s.movable for s in job.people),
                    shape_optimized=job.options.optimize_shape,
                ),
                constraints=tuple(
                    ConstraintDistance(term.label, term.source, term.weight, b, a)
                    for term, b, a in zip(objective.terms, before, after)
                ),
                losses=outcome.losses,
                iterations=outcome.iterations,
                wall_time_s=outcome.wall_time_s,
                backed_off=objective.backed_off,
                warnings=outcome.warnings,
            )
        # Never report NaN or infinity as a refined pose (issue 18): name the first such field.
        bad = non_finite_field(frame_result.to_dict(), where)
        if bad is not None:
            raise JobError(
                f"{where} (frame {frame.frame}): the refinement produced a non-finite number at {bad}; "
                "no result was written. Check that the job's poses, shapes and weights are of a sensible size"
            )
        frames.append(frame_result)
    job_warnings += _floor_warnings(far_from_floor, floor_height, job)
    return Result(
        body=job.body,
        frames=tuple(frames),
        wall_time_s=time.perf_counter() - started,
        warnings=tuple(job_warnings),
        floor_height=floor_height,
    )


def _run_sequence(
    job: Job,
    body: BodyModel,
    regions: RegionVertices,
    objective: ContactObjective,
    people_options: list[PersonOptions],
    job_warnings: list[str],
    started: float,
    progress: Callable[[FrameProgress], None] | None,
    should_stop: Callable[[], bool] | None,
) -> Result:
    """Every frame solved together (engine.refine.sequence), for a job with contact intervals
    or ``options.solve`` "sequence"."""
    from engine.refine.sequence import run_sequence_job

    initial = [people_state(body, frame.people, f"frames[{i}]") for i, frame in enumerate(job.frames)]
    first = job.frames[0].frame

    def report(step: Progress) -> None:
        if progress is not None:
            progress(FrameProgress(0, first, step))

    try:
        frames, floor_height, warnings = run_sequence_job(
            job, body, regions, objective, people_options, initial, progress=report, should_stop=should_stop
        )
    except ValueError as error:
        raise JobError(str(error)) from None
    for index, frame_result in enumerate(frames):
        where = f"frames[{index}]"
        bad = non_finite_field(frame_result.to_dict(), where)
        if bad is not None:
            raise JobError(
                f"{where} (frame {frame_result.frame}): the refinement produced a non-finite number at {bad}; "
                "no result was written. Check that the job's poses, shapes and weights are of a sensible size"
            )
    far: dict[GroundRow, list[tuple[int, float]]] = {}
    for frame, state in zip(job.frames, initial):
        for row, gap in far_ground_rows(body, regions, state, objective, floor_height):
            far.setdefault(row, []).append((frame.frame, gap))
    return Result(
        body=job.body,
        frames=tuple(frames),
        wall_time_s=time.perf_counter() - started,
        warnings=tuple(job_warnings + warnings + _floor_warnings(far, floor_height, job)),
        floor_height=floor_height,
    )


def _floor_warnings(far: dict[GroundRow, list[tuple[int, float]]], floor_height: float | None, job: Job) -> list[str]:
    """One warning per ground row that starts far from the floor, with its worst frame."""
    if not far:
        return []
    where = "options.floor_height" if job.options.floor_height is not None else "the lowest foot point of the first frame"
    warnings = []
    for row, hits in far.items():
        frame, gap = max(hits, key=lambda hit: hit[1])
        if len(hits) == 1:
            how_far, when = f"{gap * 100:.0f} cm", f"at the start of frame {frame}"
        else:
            how_far = f"up to {gap * 100:.0f} cm"
            when = f"at the start of {len(hits)} of {len(job.frames)} frames (farthest: frame {frame})"
        warnings.append(
            f"ground contact {row.label} is {how_far} from the floor (z = {floor_height:.3f} m, {where}) "
            f"{when}: the refinement pulls it that far; check the floor height or the contact"
        )
    return warnings
