"""``python -m engine refine`` as a real subprocess: a full small run whose result validates
against the schema, one clear JSON error line for a corrupt or wrong job, and SIGTERM
stopping without writing (or touching) the result file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import jsonschema
import pytest

from conftest import REPO_ROOT


# The two stand 0.7 m apart: closer, their rest-pose fingertips overlap and the first steps
# go to pushing them apart (the interpenetration term), not to the contact this test checks.
def job_dict(iterations=(1000, 1000), progress_every=1) -> dict:
    return {
        "schema_version": 1,
        "body": {"kind": "anny", "model_path": None},
        "people": [{"name": "A"}, {"name": "B", "movable": False}],
        "frames": [
            {
                "frame": 7,
                "people": [
                    {"rotations": {}, "root_translation": [0.0, 0.0, 0.82]},
                    {"rotations": {"root": [0.0, 0.0, 0.0, 1.0]}, "root_translation": [0.0, -0.7, 0.82]},
                ],
            }
        ],
        "constraints": {
            "explicit": [{"person_a": 0, "region_a": "right_hand", "person_b": 1, "region_b": "left_shoulder", "weight": 1.0}]
        },
        "options": {"iterations": list(iterations), "progress_every": progress_every},
    }


def run_engine(tmp_path, job, output_name="result.json", **kwargs):
    job_path = tmp_path / "job.json"
    if isinstance(job, str):
        job_path.write_text(job, encoding="utf-8")
    else:
        job_path.write_text(json.dumps(job), encoding="utf-8")
    command = [sys.executable, "-m", "engine", "refine", str(job_path), "-o", str(tmp_path / output_name)]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, **kwargs)


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_small_refinement_writes_a_valid_result(tmp_path):
    completed = run_engine(tmp_path, job_dict(iterations=(15, 5), progress_every=5))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    events = json_lines(completed.stdout)
    assert events[0]["event"] == "frame" and events[-1]["event"] == "done"
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and {"stage", "iteration", "total", "losses"} <= set(progress[0])
    assert "contact" in progress[0]["losses"]
    result = json.loads((tmp_path / "result.json").read_text())
    schema = json.loads((REPO_ROOT / "schemas" / "result.schema.json").read_text())
    jsonschema.validate(result, schema)
    frame = result["frames"][0]
    assert frame["frame"] == 7 and len(frame["people"]) == 2
    (distance,) = frame["constraints"]
    assert distance["after_m"] < distance["before_m"]
    # Person B is fixed: written back exactly as given.
    assert frame["people"][1]["root_translation"] == [0.0, -0.7, 0.82]
    assert not list(tmp_path.glob(".result.json.*"))  # no temporary file left behind


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({**job_dict(), "colour": "red"}), "unknown key"),
        (json.dumps({**job_dict(), "schema_version": 9}), "schema_version 9 is not supported"),
    ],
)
def test_bad_job_file_gives_one_json_error_line(tmp_path, content, message):
    completed = run_engine(tmp_path, content)
    assert completed.returncode != 0
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1, completed.stdout
    event = json.loads(lines[0])
    assert event["event"] == "error" and message in event["message"]
    assert not (tmp_path / "result.json").exists()


def test_unknown_joint_name_is_reported(tmp_path):
    job = job_dict(iterations=(5, 5))
    job["frames"][0]["people"][0]["rotations"] = {"left_tail": [1.0, 0.0, 0.0, 0.0]}
    completed = run_engine(tmp_path, job)
    assert completed.returncode != 0
    event = json_lines(completed.stdout)[-1]
    assert event["event"] == "error" and "left_tail" in event["message"]


def test_sigterm_stops_without_writing_the_result(tmp_path):
    output = tmp_path / "result.json"
    output.write_text("previous result", encoding="utf-8")
    job_path = tmp_path / "job.json"
    job_path.write_text(json.dumps(job_dict()), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "refine", str(job_path), "-o", str(output)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if json.loads(line)["event"] == "progress":
                process.send_signal(signal.SIGTERM)
                break
        stdout, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    last = json.loads(stdout.strip().splitlines()[-1])
    assert last["event"] == "error" and "SIGTERM" in last["message"]
    assert output.read_text(encoding="utf-8") == "previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.json", "result.json"]
