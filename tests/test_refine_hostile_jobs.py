"""Issue 18 points 3, 5 and 6: hostile job files end with "job file X: <field>: what is wrong"
(never "refinement failed: <ExceptionType>"), no NaN is ever reported as success, and a job
that will not fit in memory is refused before it starts, with the figure."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from engine.cli import main
from engine.refine.job import JobFormatError, non_finite_field, unit_quaternion


def job_dict(**options) -> dict:
    return {
        "schema_version": 1,
        "body": {"kind": "anny", "model_path": None},
        "people": [{"name": "A"}],
        "frames": [{"frame": 1, "people": [{"rotations": {}, "root_translation": [0.0, 0.0, 0.0]}]}],
        "options": {"iterations": [1, 1], **options},
    }


def refine_in_process(tmp_path: Path, job, capsys, output: Path | None = None) -> tuple[int, list[dict]]:
    job_path = tmp_path / "job.json"
    if isinstance(job, bytes):
        job_path.write_bytes(job)
    else:
        job_path.write_text(job if isinstance(job, str) else json.dumps(job), encoding="utf-8")
    output = output if output is not None else tmp_path / "result.json"
    code = main(["refine", str(job_path), "-o", str(output)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return code, lines


def error_message(code: int, lines: list[dict]) -> str:
    assert code == 2, lines
    assert lines[-1]["event"] == "error"
    message = lines[-1]["message"]
    assert "refinement failed" not in message
    return message


def test_binary_job_file(tmp_path, capsys):
    message = error_message(*refine_in_process(tmp_path, b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 50, capsys))
    assert message.startswith(f"job file {tmp_path / 'job.json'}: not a text file")


@pytest.mark.parametrize(
    "seed, words",
    [(10**400, "a 401-digit integer is too large"), (10**30, "too large (at most"), (1e30, "expected an integer")],
    ids=["400-digit", "integer-1e30", "float-1e30"],
)
def test_huge_seed_names_the_field(tmp_path, capsys, seed, words):
    message = error_message(*refine_in_process(tmp_path, job_dict(seed=seed), capsys))
    assert message.startswith(f"job file {tmp_path / 'job.json'}: options.seed: ")
    assert words in message
    assert len(message) < 400


def test_huge_integer_anywhere_names_the_field(tmp_path, capsys):
    job = job_dict()
    job["frames"][0]["frame"] = 10**400
    message = error_message(*refine_in_process(tmp_path, job, capsys))
    assert "frames[0].frame: a 401-digit integer is too large" in message


@pytest.mark.parametrize("where", ["top", "inside"])
def test_deep_nesting(tmp_path, capsys, where):
    deep = "[" * 200_000 + "]" * 200_000
    text = deep if where == "top" else json.dumps(job_dict()).replace('"name": "A"', f'"name": {deep}')
    message = error_message(*refine_in_process(tmp_path, text, capsys))
    assert message.startswith(f"job file {tmp_path / 'job.json'}: ") and "nested too deeply" in message


def test_output_that_is_a_folder(tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    message = error_message(*refine_in_process(tmp_path, job_dict(), capsys, output=folder))
    assert message == f"output {folder}: is a folder; give the path of the result file to write"


def test_output_in_proc(tmp_path, capsys):
    output = Path("/proc/prosepose-result.json")
    message = error_message(*refine_in_process(tmp_path, job_dict(), capsys, output=output))
    assert message.startswith(f"output {output}: cannot create a file in /proc")


def test_absurd_translation_is_refused_naming_file_and_field(tmp_path, capsys):
    job = job_dict()
    job["frames"][0]["people"][0]["root_translation"] = [1e30, 0.0, 0.0]
    message = error_message(*refine_in_process(tmp_path, job, capsys))
    assert message.startswith(f"job file {tmp_path / 'job.json'}: frames[0].people[0].root_translation[0]: 1e+30 m")
    assert not (tmp_path / "result.json").exists()


def test_quaternions_are_normalised_by_their_largest_component():
    assert unit_quaternion((1e200, 0.0, 0.0, 0.0), "q") == (1.0, 0.0, 0.0, 0.0)
    assert unit_quaternion((1e-200, 0.0, 0.0, 0.0), "q") == (1.0, 0.0, 0.0, 0.0)
    tiny = unit_quaternion((3e-200, 4e-200, 0.0, 0.0), "q")
    assert math.isclose(tiny[0], 0.6) and math.isclose(tiny[1], 0.8)
    with pytest.raises(JobFormatError, match="zero quaternion"):
        unit_quaternion((0.0, 0.0, 0.0, 0.0), "q")


def test_huge_and_tiny_quaternions_give_a_finite_result(tmp_path, capsys):
    job = job_dict()
    job["frames"][0]["people"][0]["rotations"] = {"root": [1e200, 0, 0, 0], "spine01": [1e-200, 0, 0, 0]}
    code, lines = refine_in_process(tmp_path, job, capsys)
    assert code == 0, lines
    text = (tmp_path / "result.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    result = json.loads(text)
    assert non_finite_field(result) is None
    rotations = result["frames"][0]["people"][0]["rotations"]
    assert all(math.isfinite(v) for q in rotations.values() for v in q)


def test_non_finite_refinement_is_an_error_not_a_result(tmp_path, capsys, monkeypatch):
    import dataclasses

    import engine.refine.run as run_module

    real_refine = run_module.refine

    def refine_into_nan(*args, **kwargs):
        outcome = real_refine(*args, **kwargs)
        state = outcome.state
        nan_state = dataclasses.replace(state, root_translation=state.root_translation * float("nan"))
        return dataclasses.replace(outcome, state=nan_state)

    monkeypatch.setattr(run_module, "refine", refine_into_nan)
    message = error_message(*refine_in_process(tmp_path, job_dict(), capsys))
    assert "frames[0] (frame 1): the refinement produced a non-finite number at frames[0].people[0].root_translation[0]" in message
    assert not (tmp_path / "result.json").exists()


def test_non_finite_field_names_the_path():
    assert non_finite_field({"a": [1.0, {"b": float("nan")}]}) == "a[1].b"
    assert non_finite_field({"a": [1.0, 2]}) is None


def test_a_million_frames_is_refused_with_the_figure(tmp_path):
    from engine.refine.limits import available_bytes, estimate_job_bytes

    available = available_bytes()
    frames = 1_000_000
    if available is None or estimate_job_bytes(frames, 2, "anny") <= available:
        pytest.skip("this machine has the memory for a million frames of two people")
    frame = '{"frame": 1, "people": [{"rotations": {}, "root_translation": [0, 0, 0]}, {"rotations": {}, "root_translation": [1, 0, 0]}]}'
    job = job_dict()
    job["people"] = [{"name": "A"}, {"name": "B"}]
    job["frames"] = "FRAMES"
    job_path = tmp_path / "job.json"
    with open(job_path, "w") as stream:  # about 120 MB
        stream.write(json.dumps(job).replace('"FRAMES"', "[" + ",".join([frame] * frames) + "]"))
    completed = subprocess.run(
        [sys.executable, "-m", "engine", "refine", str(job_path), "-o", str(tmp_path / "result.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    message = json.loads(completed.stdout.strip().splitlines()[-1])["message"]
    assert message.startswith(f"job file {job_path}: frames: 1000000 frames of 2 anny people need about ")
    assert "GB of memory" in message and "available; split it into jobs of at most" in message
    assert not (tmp_path / "result.json").exists()
