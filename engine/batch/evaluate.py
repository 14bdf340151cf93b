"""A batch item's result against its ground truth (DESIGN.md section 4, "Metrics"), in the
worker that refined it (the body is loaded there). Per evaluated frame, before (the job's
poses) and after (the result's): MPJPE, PA-MPJPE (each person aligned on their own, averaged)
and, for two people, the joint PA-MPJPE (one alignment for both) on the body's joints; the
mean vertex error when vertices are given; and each ground-truth contact pair's distance,
from which the report computes PCC over the whole run. Lengths in metres."""

from __future__ import annotations

import numpy as np
import torch

from engine.batch.manifest import GroundTruth
from engine.body.regions import GROUND
from engine.errors import EngineError
from engine.refine.job import Job, Result
from engine.refine.metrics import ground_gap, joint_pa_mpjpe, min_point_distance, mpjpe, per_person_pa_mpjpe
from engine.refine.run import people_state


def _posed(body, poses, where: str) -> tuple[np.ndarray, np.ndarray]:
    state = people_state(body, poses, where)
    with torch.no_grad():
        output = body.forward(state.local_rotations, state.root_translation, state.shape)
    return output.vertices.double().numpy(), output.joints.double().numpy()


def _check_shape(array: np.ndarray, people: int, count: int, what: str, where: str) -> None:
    if array.shape != (people, count, 3):
        raise EngineError(
            f"{where}.{what}: shape {array.shape}, the job's {people} {body_word(people)} of this body have "
            f"({people}, {count}, 3)"
        )


def body_word(people: int) -> str:
    return "person" if people == 1 else "people"


def _pose_errors(predicted: np.ndarray, truth: np.ndarray, prefix: str, suffix: str) -> dict[str, float]:
    errors = {f"{prefix}mpjpe_{suffix}": mpjpe(predicted, truth), f"{prefix}pa_mpjpe_{suffix}": per_person_pa_mpjpe(predicted, truth)}
    if len(predicted) > 1:
        errors[f"{prefix}joint_pa_mpjpe_{suffix}"] = joint_pa_mpjpe(list(predicted), list(truth))
    return errors


def _contact_distances(vertices: np.ndarray, regions, contacts, floor_height: float) -> list[float]:
    distances = []
    for contact in contacts:
        points_a = vertices[contact.person_a, regions.vertex_ids(contact.region_a)]
        if contact.region_b == GROUND:
            distances.append(ground_gap(points_a, floor_height))
        else:
            distances.append(min_point_distance(points_a, vertices[contact.person_b, regions.vertex_ids(contact.region_b)]))
    return distances


def evaluate(body, regions, job: Job, result: Result, truth: GroundTruth) -> list[dict | None]:
    """One entry per result frame: its figures, or None for a frame without ground truth.
    Raises EngineError for a ground truth that does not fit the job (shapes, people)."""
    people = len(job.people)
    floor = result.floor_height if result.floor_height is not None else 0.0
    known = {frame.frame for frame in result.frames}
    unknown = sorted(frame.frame for frame in truth.frames if frame.frame not in known)
    if unknown:
        raise EngineError(f"ground truth: frame(s) {unknown} are not frames of the job")
    entries: list[dict | None] = []
    for index, frame_result in enumerate(result.frames):
        frame_truth = truth.frame(frame_result.frame)
        if frame_truth is None:
            entries.append(None)
            continue
        where = f"ground truth frame {frame_result.frame}"
        before_vertices, before_joints = _posed(body, job.frames[index].people, f"frames[{index}]")
        after_vertices, after_joints = _posed(body, frame_result.people, f"result.frames[{index}]")
        entry: dict = {}
        if frame_truth.joints is not None:
            _check_shape(frame_truth.joints, people, len(body.joint_names), "joints", where)
            entry.update(_pose_errors(before_joints, frame_truth.joints, "", "before_m"))
            entry.update(_pose_errors(after_joints, frame_truth.joints, "", "after_m"))
        if frame_truth.vertices is not None:
            _check_shape(frame_truth.vertices, people, body.num_vertices, "vertices", where)
            entry["vertex_error_before_m"] = mpjpe(before_vertices, frame_truth.vertices)
            entry["vertex_error_after_m"] = mpjpe(after_vertices, frame_truth.vertices)
        if frame_truth.contacts:
            for k, contact in enumerate(frame_truth.contacts):
                if max(contact.person_a, contact.person_b) >= people:
                    raise EngineError(f"{where}.contacts[{k}]: the job has {people} {body_word(people)} (0-based)")
            entry["contacts"] = [
                f"{c.person_a}:{c.region_a} - {c.person_b}:{c.region_b}" for c in frame_truth.contacts
            ]
            entry["contact_before_m"] = _contact_distances(before_vertices, regions, frame_truth.contacts, floor)
            entry["contact_after_m"] = _contact_distances(after_vertices, regions, frame_truth.contacts, floor)
        entries.append(entry)
    return entries
