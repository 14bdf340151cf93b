"""The rig description: the CLI writes it, the validating reader reads it back, and what it
holds reproduces the body (bones along the frames' Y axes, weights summing to 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.body.rig import RIG_SCHEMA_VERSION, RigError, read_rig, write_rig

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def anny_rig(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rig")
    out = folder / "anny_rig.npz"
    env = {**os.environ, "PROSEPOSE_CACHE_DIR": str(folder / "cache")}
    result = subprocess.run(
        [sys.executable, "-m", "engine", "rig", "--body", "anny", "--shape", "0.2", "0.8", "--out", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert json.loads(lines[-1])["event"] == "done"
    return out


def test_rig_file_is_complete_and_consistent(anny_rig):
    rig = read_rig(anny_rig)
    assert rig.schema_version == RIG_SCHEMA_VERSION and rig.kind == "anny"
    assert len(rig.joint_names) == 104 and len(rig.vertices) == 13718
    assert np.allclose(rig.shape[:2], [0.2, 0.8]) and np.allclose(rig.shape[2:], 0.5)
    sums = np.bincount(rig.weight_vertex, weights=rig.weight_value, minlength=len(rig.vertices))
    assert np.allclose(sums, 1.0, atol=1e-4)
    heads = rig.rest_joint_frames[:, :3, 3]
    along = rig.bone_tails - heads
    lengths = np.linalg.norm(along, axis=1)
    assert (lengths > 0).all()
    assert np.allclose(along / lengths[:, None], rig.rest_joint_frames[:, :3, 1], atol=1e-6)
    names = [str(n) for n in rig.region_names]
    waist = set(rig.region_vertex_set("waist").tolist())
    assert waist == set(rig.region_vertex_set("waist_front").tolist()) | set(rig.region_vertex_set("waist_back").tolist())
    assert "left_hand" in names and "ground" not in names


def test_reader_rejects_unknown_keys_and_versions(anny_rig, tmp_path):
    rig = read_rig(anny_rig)
    with np.load(anny_rig, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    extra = tmp_path / "extra.npz"
    np.savez(extra, surprise=np.zeros(1), **arrays)
    with pytest.raises(RigError, match="unknown keys"):
        read_rig(extra)
    arrays["schema_version"] = np.array(RIG_SCHEMA_VERSION + 1)
    newer = tmp_path / "newer.npz"
    np.savez(newer, **arrays)
    with pytest.raises(RigError, match="schema_version"):
        read_rig(newer)
    copy = tmp_path / "copy.npz"
    write_rig(copy, rig)
    assert np.array_equal(read_rig(copy).faces, rig.faces)
