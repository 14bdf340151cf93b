"""Issue 18 point 1 through the add-on: Add body with an SMPL-X model folder holding a hostile
SMPLX_NEUTRAL.npz or .pkl runs the real engine, which refuses the file naming what is wrong;
nothing planted runs, no body is added."""

from __future__ import annotations

import bpy
import pytest

from conftest import REPO_ROOT
from support.blender_helpers import enabled_addon, scene_digest  # noqa: F401
from support.planted_model_file import planted_npz, planted_pkl
from support.smplx_model_file import build_smplx_arrays

ENGINE_PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")


@pytest.mark.parametrize("kind", ["npz", "pkl"])
def test_add_body_refuses_a_planted_smplx_model_file(enabled_addon, tmp_path, kind):
    folder = tmp_path / "models"
    folder.mkdir()
    marker = tmp_path / "ran"
    (planted_npz if kind == "npz" else planted_pkl)(folder, build_smplx_arrays(seed=0), marker)
    prefs = bpy.context.preferences.addons["prosepose"].preferences
    prefs.engine_python = ENGINE_PYTHON
    prefs.smplx_model_folder = str(folder)
    before = scene_digest()
    expected = "'payload' holds Python objects" if kind == "npz" else "posix.mkdir"
    with pytest.raises(RuntimeError, match=expected):
        bpy.ops.prosepose.add_body(kind="smplx", gender="NEUTRAL", name="P1")
    assert not marker.exists(), "loading the model file ran code"
    assert "P1" not in bpy.data.objects
    assert scene_digest() == before
