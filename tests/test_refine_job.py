"""Job and result files: round trips, the JSON Schemas accept what to_dict writes, and bad
files are rejected with a message naming the problem."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from conftest import REPO_ROOT
from engine.refine.job import (
    ConstraintDistance,
    FrameResult,
    Job,
    JobFormatError,
    PersonPose,
    Result,
)


def _schema(name: str) -> dict:
    return json.loads((REPO_ROOT / "schemas" / name).read_text(encoding="utf-8"))


def example_job_dict() -> dict:
    return {
        "schema_version": 1,
        "body": {"kind": "anny", "model_path": None},
        "people": [{"name": "A", "movable": True, "pinned_joints": ["neck"], "joint_weights": {"root_translation": 2.0}}, {"movable": False}],
        "frames": [
            {
                "frame": 3,
                "people": [
                    {"shape": [0.5], "rotations": {"neck": [2.0, 0.0, 0.0, 0.0]}, "root_translation": [0, 0, 0]},
                    {"rotations": {}, "root_translation": [0.6, 0.0, 0.0], "keypoints_2d": {"neck": [10, 20, 0.9]}},
                ],
            }
        ],
        "constraints": {
            "lmm_samples": [{"anything": "kept as data"}],
            "explicit": [{"person_a": 0, "region_a": "right_hand", "person_b": 1, "region_b": "left_shoulder", "weight": 2.0}],
        },
        "options": {
            "weights": {"contact": [10.0, 20.0]},
            "iterations": [50, 20],
            "camera": {
                "world_to_camera": [[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 5], [0, 0, 0, 1]],
                "focal_length_px": [1000, 1000],
                "principal_point_px": [512, 512],
            },
        },
    }


def test_job_round_trip_validates_against_schema():
    job = Job.from_dict(example_job_dict())
    assert job.frames[0].people[0].rotations["neck"] == (1.0, 0.0, 0.0, 0.0)  # normalised
    assert job.options.weights["contact"] == (10.0, 20.0)
    written = job.to_dict()
    jsonschema.validate(written, _schema("job.schema.json"))
    jsonschema.validate(example_job_dict(), _schema("job.schema.json"))
    assert Job.from_dict(json.loads(json.dumps(written))) == job


def test_back_off_and_floor_are_optional_with_defaults_that_depend_on_the_scene():
    job = Job.from_dict(example_job_dict())
    assert job.constraints.empty_backoff is None and job.options.floor_height is None
    data = example_job_dict()
    data["constraints"]["empty_backoff"] = None
    data["options"]["floor_height"] = None
    jsonschema.validate(data, _schema("job.schema.json"))
    assert Job.from_dict(data) == job
    written = job.to_dict()
    assert written["constraints"]["empty_backoff"] is None and written["options"]["floor_height"] is None
    data["constraints"]["empty_backoff"] = 0  # never back off
    data["options"]["floor_height"] = -0.8
    jsonschema.validate(data, _schema("job.schema.json"))
    explicit = Job.from_dict(data)
    assert explicit.constraints.empty_backoff == 0 and explicit.options.floor_height == -0.8
    data["constraints"]["empty_backoff"] = -1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, _schema("job.schema.json"))


def test_result_to_dict_validates_against_schema():
    pose = PersonPose(shape=(0.1,), rotations={"neck": (1.0, 0.0, 0.0, 0.0)}, root_translation=(0.0, 0.1, 0.0))
    frame = FrameResult(
        frame=1,
        people=(pose,),
        constraints=(ConstraintDistance("P1 left_hand - ground", "artist", 1.0, 0.2, 0.001),),
        losses={"contact": 0.001},
        iterations=(10, 5),
        wall_time_s=0.5,
        backed_off=False,
        warnings=("note",),
    )
    job = Job.from_dict(example_job_dict())
    result = Result(body=job.body, frames=(frame,), wall_time_s=0.6, warnings=("ground far",), floor_height=-0.81)
    written = result.to_dict()
    jsonschema.validate(written, _schema("result.schema.json"))
    assert Result.from_dict(json.loads(json.dumps(written))) == result
    older = {k: v for k, v in written.items() if k != "floor_height"}
    assert Result.from_dict(older).floor_height is None


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(extra=1), "unknown key"),
        (lambda d: d["people"][0].update(colour="red"), "unknown key"),
        (lambda d: d["frames"][0]["people"][0].update(pose=[]), "unknown key"),
        (lambda d: d["options"].update(learning_rate=3), "unknown key"),
        (lambda d: d["options"]["weights"].update(gmm=[1, 1]), "unknown weight"),
        (lambda d: d["options"]["weights"].update(contact=[1, 1, 1]), "expected 2 numbers"),
        (lambda d: d.update(schema_version=2), "schema_version 2 is not supported"),
        (lambda d: d.pop("schema_version"), "missing 'schema_version'"),
        (lambda d: d["constraints"]["explicit"][0].update(region_a="left_tail"), "unknown region"),
        (lambda d: d["constraints"]["explicit"][0].update(person_b=2), "person 2 does not exist"),
        (lambda d: d["frames"][0]["people"].pop(), "1 poses for 2 people"),
        (lambda d: d["frames"][0]["people"][0].update(rotations={"neck": [0, 0, 0, 0]}), "zero quaternion"),
        (lambda d: d["body"].update(kind="smplx"), "model_path"),
        (lambda d: d["constraints"].update(empty_backoff=-1), "empty_backoff: must be >= 0"),
        (lambda d: d["constraints"].update(empty_backoff=2.5), "empty_backoff: expected an integer"),
        (lambda d: d["options"].update(floor_height="auto"), "floor_height: expected a number"),
    ],
)
def test_job_rejects_bad_input(mutate, message):
    data = copy.deepcopy(example_job_dict())
    mutate(data)
    with pytest.raises(JobFormatError, match=message):
        Job.from_dict(data)


def test_schema_rejects_what_the_reader_rejects():
    data = example_job_dict()
    data["extra"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, _schema("job.schema.json"))
    data = example_job_dict()
    data["schema_version"] = 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, _schema("job.schema.json"))
    result = {"schema_version": 2, "body": {"kind": "anny"}, "frames": [], "wall_time_s": 0.0}
    with pytest.raises(JobFormatError, match="not supported"):
        Result.from_dict(result)
