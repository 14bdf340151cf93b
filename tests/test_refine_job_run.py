"""run_job in-process on the synthetic body: LMM samples from the job (contacts-file form)
become the objective, back-off is reported, frames run in order with a warm start."""

from __future__ import annotations

import pytest

from engine.contacts.constraints import CellPart, ParsedCell, ParsedRow, ParsedSample
from engine.refine.job import Job
from engine.refine.run import JobError, run_job
from support.synthetic_body import SyntheticBody


@pytest.fixture(scope="module")
def body():
    return SyntheticBody()


def sample(rows=(("hand", "shoulder"),)) -> dict:
    parsed = ParsedSample(
        rows=tuple(ParsedRow(ParsedCell((CellPart(a),), a), ParsedCell((CellPart(b),), b), f"{a} | {b}") for a, b in rows),
        empty=not rows,
    )
    return parsed.to_dict()


def job(samples: list[dict], frames=(1,)) -> Job:
    pose_a = {"rotations": {}, "root_translation": [0.0, 0.0, 0.0]}
    pose_b = {"rotations": {"pelvis": [0.0, 0.0, 0.0, 1.0]}, "root_translation": [-1.2, -0.5, 0.0]}
    return Job.from_dict(
        {
            "schema_version": 1,
            "body": {"kind": "anny", "model_path": None},
            "people": [{}, {}],
            "frames": [{"frame": f, "people": [pose_a, pose_b]} for f in frames],
            "constraints": {"lmm_samples": samples},
            "options": {"iterations": [40, 10], "progress_every": 5},
        }
    )


def test_lmm_samples_drive_the_refinement_over_frames(body):
    seen = []
    result = run_job(job([sample()] * 4, frames=(3, 4)), body, body.regions, progress=seen.append)
    assert [f.frame for f in result.frames] == [3, 4]
    assert {p.frame for p in seen} == {3, 4} and all(p.progress.stage in (1, 2) for p in seen)
    first = result.frames[0]
    assert not first.backed_off
    assert [c.label for c in first.constraints] == [f"LMM sample {i}" for i in range(1, 5)]
    assert all(c.after_m < c.before_m for c in first.constraints)
    # The second frame starts from the first one's correction: it begins closer.
    assert result.frames[1].constraints[0].after_m <= first.constraints[0].before_m
    assert set(first.people[0].rotations) == set(body.joint_names)


def test_back_off_is_reported_and_no_lmm_term_is_used(body):
    # By default the job backs off when half of the answers (rounded up) are empty: 3 of 5.
    result = run_job(job([sample()] * 2 + [sample(rows=())] * 3), body, body.regions)
    frame = result.frames[0]
    assert frame.backed_off and frame.constraints == ()
    assert any("3 of 5 answers were empty" in w for w in result.warnings)


def test_a_few_empty_answers_keep_the_contacts_and_are_counted(body):
    result = run_job(job([sample()] * 3 + [sample(rows=())] * 2), body, body.regions)
    frame = result.frames[0]
    assert not frame.backed_off and len(frame.constraints) == 3
    assert any("2 of 5 answers were empty" in w for w in result.warnings)
    data = job([sample()] * 1 + [sample(rows=())] * 4).to_dict()
    data["constraints"]["empty_backoff"] = 0  # never
    assert not run_job(Job.from_dict(data), body, body.regions).frames[0].backed_off


def test_a_sample_in_the_wrong_form_is_a_job_error(body):
    with pytest.raises(JobError, match="lmm_samples"):
        run_job(job([{"rows": "hand"}]), body, body.regions)


@pytest.mark.parametrize("optimize_shape", [True, False])
def test_optimize_shape_switch_holds_the_shape_exactly(body, optimize_shape):
    data = job([sample()] * 4).to_dict()
    given = [0.1] * len(body.shape_names)
    for pose in data["frames"][0]["people"]:
        pose["shape"] = given
    data["options"]["optimize_shape"] = optimize_shape
    result = run_job(Job.from_dict(data), body, body.regions)
    shapes = [tuple(person.shape) for person in result.frames[0].people]
    if optimize_shape:
        assert any(shape != tuple(given) for shape in shapes)
    else:
        assert all(shape == tuple(given) for shape in shapes)
