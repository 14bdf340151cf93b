"""The floor of a job: by default where the bodies stand (the lowest foot point of the first
frame's initial poses), an explicit floor_height as given, and a ground row far from the floor
at the start named in the result's warnings."""

from __future__ import annotations

import pytest
import torch

from engine.contacts.constraints import artist_term
from engine.contacts.objective import ContactObjective
from engine.refine.floor import FOOT_REGIONS, ground_rows
from engine.refine.job import Job
from engine.refine.run import run_job
from support.synthetic_body import SyntheticBody


def _job(people: list[dict], explicit: list[dict], floor_height=None, frames=(1,)) -> Job:
    options: dict = {"iterations": [0, 0]}
    if floor_height is not None:
        options["floor_height"] = floor_height
    return Job.from_dict(
        {
            "schema_version": 1,
            "body": {"kind": "anny", "model_path": None},
            "people": [{} for _ in people],
            "frames": [{"frame": f, "people": people} for f in frames],
            "constraints": {"explicit": explicit},
            "options": options,
        }
    )


def _on_ground(person: int, region: str) -> dict:
    return {"person_a": person, "region_a": region, "person_b": person, "region_b": "ground"}


STANDING = {"rotations": {}, "root_translation": [0.0, 0.0, 0.0]}


@pytest.fixture(scope="module")
def anny():
    from engine.body import load_body
    from engine.body.region_map import body_regions

    body = load_body("anny")
    return body, body_regions(body)


def test_default_floor_is_the_lowest_foot_vertex_of_an_anny_body_at_its_default_placement(anny):
    body, regions = anny
    result = run_job(_job([STANDING], [_on_ground(0, "left_foot")]), body, regions)
    with torch.no_grad():
        rest = body.forward(
            torch.eye(3).repeat(1, len(body.joint_names), 1, 1), torch.zeros(1, 3), body.default_shape()[None].float()
        ).vertices[0]
    feet = torch.cat([torch.as_tensor(regions.vertex_ids(r)) for r in FOOT_REGIONS])
    lowest_foot = float(rest[feet, 2].min())
    # An Anny body stands with its soles about 0.8 m below its origin: the floor is there, not at 0.
    assert lowest_foot < -0.5
    assert result.floor_height == pytest.approx(lowest_foot, abs=1e-5)
    assert result.floor_height == pytest.approx(float(rest[:, 2].min()), abs=1e-5)  # the feet are the lowest part
    # A "foot on the ground" row then starts on the floor, not 80 cm from it, and nobody is warned.
    assert result.frames[0].constraints[0].before_m < 0.005
    assert not any("floor" in w for w in result.warnings)


def test_an_explicit_floor_height_is_honoured_and_a_far_ground_row_is_reported(anny):
    body, regions = anny
    result = run_job(_job([STANDING], [_on_ground(0, "left_foot")], floor_height=0.0), body, regions)
    assert result.floor_height == 0.0
    assert result.frames[0].constraints[0].before_m > 0.7
    [warning] = [w for w in result.warnings if "floor" in w]
    assert "P1 left_foot - ground" in warning and "options.floor_height" in warning and "frame 1" in warning


@pytest.fixture(scope="module")
def synthetic():
    return SyntheticBody()


def test_a_ground_row_30_cm_above_the_floor_gives_a_warning(synthetic):
    # Person 2 stands 30 cm higher (on a box) than Person 1: the floor is Person 1's, the
    # lower foot point, and Person 2's "foot on the ground" row starts 30 cm from it.
    raised = {"rotations": {}, "root_translation": [1.0, 0.0, 0.30]}
    job = _job([STANDING, raised], [_on_ground(0, "left_foot"), _on_ground(1, "right_foot")], frames=(4, 5))
    result = run_job(job, synthetic, synthetic.regions)
    floor_warnings = [w for w in result.warnings if "from the floor" in w]
    assert len(floor_warnings) == 1
    assert "P2 right_foot - ground is up to 30 cm from the floor" in floor_warnings[0]
    assert "2 of 2 frames" in floor_warnings[0] and "lowest foot point" in floor_warnings[0]
    before = {c.label: c.before_m for c in result.frames[0].constraints}
    assert before["P1 left_foot - ground"] < 0.01 and before["P2 right_foot - ground"] == pytest.approx(0.30, abs=0.01)


def test_a_ground_row_10_cm_from_the_floor_is_not_reported(synthetic):
    raised = {"rotations": {}, "root_translation": [1.0, 0.0, 0.10]}
    result = run_job(_job([STANDING, raised], [_on_ground(1, "right_foot")]), synthetic, synthetic.regions)
    assert not [w for w in result.warnings if "from the floor" in w]


def test_ground_rows_are_the_rows_only_the_floor_satisfies():
    objective = ContactObjective(terms=(artist_term(0, "hand", 0, "ground", 1.0), artist_term(0, "left_hand", 0, "head", 1.0)))
    rows = ground_rows(objective)
    assert [(r.person, r.regions) for r in rows] == [(0, ("left_hand", "right_hand"))]
    assert rows[0].label == "P1 left_hand or right_hand - ground"
