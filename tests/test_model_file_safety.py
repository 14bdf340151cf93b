"""Issue 18 point 1: an SMPL-X model file never runs code when it is loaded. A ``.npz`` with an
extra array of pickled objects, and a ``.pkl`` that asks for a function, are refused with a
message naming what is wrong, through ``python -m engine rig --model-file`` and a job's
``body.model_path``; a plain ``.pkl`` of arrays (the official distribution's form) loads through
the restricted unpickler and gives the same body as the ``.npz``."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.body import BodyModelError, load_body
from tests.support.planted_model_file import planted_npz, planted_pkl
from tests.support.smplx_model_file import build_smplx_arrays

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def arrays():
    return build_smplx_arrays(seed=0)



def _engine(*argv: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROSEPOSE_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "engine", *argv], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _one_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    error = json.loads(lines[-1])
    assert error["event"] == "error"
    assert "Traceback" not in result.stderr
    return error["message"]


def test_planted_npz_in_process_runs_nothing(tmp_path, arrays):
    marker = tmp_path / "ran"
    model = planted_npz(tmp_path, arrays, marker)
    with pytest.raises(BodyModelError, match="'payload' holds Python objects") as caught:
        load_body("smplx", model)
    assert str(model) in str(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["npz", "pkl"])
def test_planted_model_file_is_refused_by_the_rig_command(tmp_path, arrays, kind):
    marker = tmp_path / "ran"
    model = (planted_npz if kind == "npz" else planted_pkl)(tmp_path, arrays, marker)
    result = _engine("rig", "--body", "smplx", "--model-file", str(model), "--out", str(tmp_path / "rig.npz"),
                     tmp_path=tmp_path)
    message = _one_error(result)
    assert not marker.exists(), "loading the model file ran code"
    assert str(model) in message
    if kind == "npz":
        assert "'payload' holds Python objects" in message
    else:
        assert "posix.mkdir" in message and ".npz" in message
    assert not (tmp_path / "rig.npz").exists()


@pytest.mark.parametrize("kind", ["npz", "pkl"])
def test_planted_model_file_is_refused_as_a_job_model_path(tmp_path, arrays, kind):
    marker = tmp_path / "ran"
    model = (planted_npz if kind == "npz" else planted_pkl)(tmp_path, arrays, marker)
    job = {
        "schema_version": 1,
        "body": {"kind": "smplx", "model_path": str(model)},
        "people": [{}],
        "frames": [{"frame": 1, "people": [{"rotations": {}, "root_translation": [0, 0, 0]}]}],
        "options": {"iterations": [1, 1]},
    }
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job))
    result = _engine("refine", str(job_file), "-o", str(tmp_path / "result.json"), tmp_path=tmp_path)
    message = _one_error(result)
    assert not marker.exists(), "loading the model file ran code"
    assert str(model) in message
    assert ("'payload'" in message) if kind == "npz" else ("posix.mkdir" in message)
    assert not (tmp_path / "result.json").exists()


def test_plain_pkl_model_file_loads_like_the_npz(tmp_path, arrays, smplx_model_file):
    pkl = tmp_path / "SMPLX_NEUTRAL.pkl"
    with open(pkl, "wb") as stream:
        # what the official .pkl holds: arrays plus a plain name table
        pickle.dump({**arrays, "joint2num": {"pelvis": 0}}, stream, protocol=2)
    from_pkl = load_body("smplx", pkl)
    from_npz = load_body("smplx", smplx_model_file)
    import roma

    generator = torch.Generator().manual_seed(0)
    rotations = roma.rotvec_to_rotmat(torch.randn(1, 55, 3, generator=generator) * 0.3)
    translation = torch.tensor([[0.1, -0.2, 0.3]])
    shape = torch.randn(1, 10, generator=generator)
    a = from_pkl.forward(rotations, translation, shape).vertices
    b = from_npz.forward(rotations, translation, shape).vertices
    assert torch.allclose(a, b)
    result = _engine("rig", "--body", "smplx", "--model-file", str(pkl), "--out", str(tmp_path / "rig.npz"),
                     tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "rig.npz").is_file()
