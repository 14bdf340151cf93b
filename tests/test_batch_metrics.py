"""The metrics batch reports (engine.refine.metrics: per-person PA-MPJPE, the smallest
distance between two point sets, a region's gap to the floor) and the evaluation of a result
against a ground truth (engine.batch.evaluate), on the synthetic body. No Ray here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.batch.evaluate import evaluate
from engine.batch.manifest import read_ground_truth
from engine.batch.report import ItemRecord, run_metrics
from engine.errors import EngineError
from engine.refine.job import Job
from engine.refine.metrics import ground_gap, joint_pa_mpjpe, min_point_distance, mpjpe, pa_mpjpe, per_person_pa_mpjpe
from engine.refine.run import people_state, run_job
from support.synthetic_body import SyntheticBody


def _rotation(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_per_person_pa_mpjpe_forgives_each_persons_own_similarity_transform():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(2, 15, 3))
    moved = np.stack([1.3 * target[0] @ _rotation(1) + 2.0, 0.7 * target[1] @ _rotation(2) - 1.0])
    assert per_person_pa_mpjpe(moved, target) == pytest.approx(0.0, abs=1e-9)
    # One alignment for both people does not forgive moving them differently.
    assert joint_pa_mpjpe(list(moved), list(target)) > 0.1
    noisy = target + rng.normal(scale=0.01, size=target.shape)
    assert per_person_pa_mpjpe(noisy, target) == pytest.approx(np.mean([pa_mpjpe(noisy[p], target[p]) for p in range(2)]))
    with pytest.raises(ValueError, match="shape"):
        per_person_pa_mpjpe(target[:, :3], target)


def test_min_point_distance_is_the_brute_force_minimum_in_chunks():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(301, 3)), rng.normal(size=(97, 3)) + 3.0
    brute = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1)).min()
    assert min_point_distance(a, b, chunk=64) == pytest.approx(brute, rel=1e-9)
    assert min_point_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        min_point_distance(a, np.zeros((0, 3)))


def test_ground_gap_is_the_lowest_point_to_the_floor():
    points = np.array([[0.0, 0.0, 0.3], [1.0, 0.0, 0.05], [0.0, 2.0, 0.9]])
    assert ground_gap(points, 0.0) == pytest.approx(0.05)
    assert ground_gap(points, 0.1) == pytest.approx(0.05)


@pytest.fixture(scope="module")
def body():
    return SyntheticBody()


def _job() -> Job:
    pose_a = {"rotations": {}, "root_translation": [0.0, 0.0, 0.0]}
    pose_b = {"rotations": {"pelvis": [0.0, 0.0, 0.0, 1.0]}, "root_translation": [-1.2, -0.5, 0.0]}
    return Job.from_dict({
        "schema_version": 1,
        "body": {"kind": "anny", "model_path": None},
        "people": [{}, {}],
        "frames": [{"frame": 4, "people": [pose_a, pose_b]}],
        "constraints": {"explicit": [{"person_a": 0, "region_a": "right_hand", "person_b": 1, "region_b": "left_shoulder"}]},
        "options": {"iterations": [30, 10], "floor_height": 0.0},
    })


def _posed(body, poses):
    state = people_state(body, poses, "test")
    with torch.no_grad():
        out = body.forward(state.local_rotations, state.root_translation, state.shape)
    return out.vertices.double().numpy(), out.joints.double().numpy()


def test_evaluation_against_the_results_own_pose_is_zero_and_against_the_start_is_the_start(body):
    job = _job()
    result = run_job(job, body, body.regions)
    vertices, joints = _posed(body, result.frames[0].people)
    start_vertices, start_joints = _posed(body, job.frames[0].people)
    contact = {"person_a": 0, "region_a": "right_hand", "person_b": 1, "region_b": "left_shoulder"}
    text = json.dumps({"frames": [{"frame": 4, "joints": joints.tolist(), "vertices": vertices.tolist(), "contacts": [contact]}]})
    (entry,) = evaluate(body, body.regions, job, result, read_ground_truth(text, "gt"))
    assert entry["mpjpe_after_m"] == pytest.approx(0.0, abs=1e-6)
    assert entry["pa_mpjpe_after_m"] == pytest.approx(0.0, abs=1e-5)
    assert entry["joint_pa_mpjpe_after_m"] == pytest.approx(0.0, abs=1e-5)
    assert entry["vertex_error_after_m"] == pytest.approx(0.0, abs=1e-6)
    assert entry["mpjpe_before_m"] == pytest.approx(mpjpe(start_joints, joints))
    hand, shoulder = body.regions.vertex_ids("right_hand"), body.regions.vertex_ids("left_shoulder")
    assert entry["contact_before_m"] == [pytest.approx(min_point_distance(start_vertices[0, hand], start_vertices[1, shoulder]))]
    assert entry["contact_after_m"][0] < entry["contact_before_m"][0]
    assert entry["contacts"] == ["0:right_hand - 1:left_shoulder"]

    # Over a run: PCC from the pairs' distances, pose metrics averaged over frames (mm).
    record = ItemRecord(id="x", line=1, job="j", key="k", status="done", frames=[{"frame": 4, "evaluation": entry}])
    metrics = run_metrics([record])
    assert metrics["frames_evaluated"] == 1 and metrics["contact_pairs"] == 1
    assert metrics["mpjpe_after_mm"] == pytest.approx(0.0, abs=0.01)
    assert metrics["pcc_after"] >= metrics["pcc_before"]


def test_a_ground_truth_that_does_not_fit_the_job_is_named(body):
    job = _job()
    result = run_job(job, body, body.regions)
    wrong_count = json.dumps({"frames": [{"frame": 4, "joints": np.zeros((2, 5, 3)).tolist()}]})
    with pytest.raises(EngineError, match=r"ground truth frame 4.joints: shape \(2, 5, 3\)"):
        evaluate(body, body.regions, job, result, read_ground_truth(wrong_count, "gt"))
    other_frame = json.dumps({"frames": [{"frame": 9, "joints": np.zeros((2, 16, 3)).tolist()}]})
    with pytest.raises(EngineError, match=r"frame\(s\) \[9\] are not frames of the job"):
        evaluate(body, body.regions, job, result, read_ground_truth(other_frame, "gt"))
    third_person = json.dumps({"frames": [{"frame": 4, "contacts": [
        {"person_a": 0, "region_a": "right_hand", "person_b": 2, "region_b": "head"}]}]})
    with pytest.raises(EngineError, match="contacts\\[0\\]: the job has 2 people"):
        evaluate(body, body.regions, job, result, read_ground_truth(third_person, "gt"))
