"""Round trip with the real engine (subprocesses with the engine's interpreter): the engine's
rig builds the body in Blender, an engine pose written as keyframes makes Blender's
armature-deformed mesh match the engine's posed vertices within 1e-4 m."""

from __future__ import annotations

import subprocess
import sys

import bpy
import numpy as np
import pytest

from conftest import REPO_ROOT
from support.blender_helpers import enabled_addon, evaluated_world_vertices  # noqa: F401

ENGINE_PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")


def _bodies():
    yield pytest.param("anny", None, id="anny")
    support = REPO_ROOT / "tests" / "support" / "smplx_model_file.py"
    if support.exists():
        yield pytest.param("smplx", support, id="smplx")


def _smplx_model(tmp_path, support):
    out = tmp_path / "SMPLX_NEUTRAL.npz"
    subprocess.run([ENGINE_PYTHON, str(support), str(out)], check=True, cwd=REPO_ROOT)
    return out


@pytest.mark.parametrize("kind, support", list(_bodies()))
def test_engine_pose_written_as_keys_matches_engine_vertices(enabled_addon, tmp_path, kind, support):
    from prosepose.prose_blender import bodies, keyframes, poses

    model = ["--model-file", str(_smplx_model(tmp_path, support))] if support else []
    pose = tmp_path / "pose.npz"
    subprocess.run([ENGINE_PYTHON, str(REPO_ROOT / "tests" / "support" / "engine_pose_script.py"), "--body", kind, *model, "--seed", "1", "--out", str(pose)], check=True, cwd=REPO_ROOT)
    prefs = bpy.context.preferences.addons["prosepose"].preferences
    prefs.engine_python = ENGINE_PYTHON
    if support:
        prefs.smplx_model_folder = model[1]
    # Add body asks the real engine for the rig (python -m engine rig) and caches it.
    assert bpy.ops.prosepose.add_body(kind=kind, name="Body") == {"FINISHED"}
    assert list((tmp_path / "cache" / "rigs").glob(f"rig-{kind}-*.npz"))
    armature = bpy.data.objects["Body"]
    info = bodies.body_info(armature)
    with np.load(pose) as data:
        names = [str(n) for n in data["joint_names"]]
        engine_pose = poses.EnginePose({n: tuple(q) for n, q in zip(names, data["quaternions"])}, tuple(data["translation"]))
        expected = data["vertices"]
    assert names == list(info.joint_names)
    keyframes.write_pose_action(armature, [1], [poses.bone_pose_from_engine(armature, info, engine_pose)], "pose")
    bpy.context.scene.frame_set(1)
    error = np.abs(evaluated_world_vertices(armature.children[0]) - expected).max()
    print(f"{kind}: max vertex error {error:.2e} m over {len(expected)} vertices")
    assert error < 1e-4


def test_check_engine_reports_the_engine(enabled_addon):
    from prosepose.prose_blender import runtime

    bpy.context.preferences.addons["prosepose"].preferences.engine_python = ENGINE_PYTHON
    assert bpy.ops.prosepose.check_engine() == {"FINISHED"}
    assert "engine_version" in runtime.last_engine_info and "anny: ok" in runtime.last_engine_info


def test_create_environment_runs_venv_and_pip_and_reports_pip_failures(enabled_addon, tmp_path):
    from prosepose.prose_blender.preferences import engine_settings, preferences
    from prosepose.prose_blender.tasks import EnvironmentTask, TaskState

    # A requirements file pip can satisfy offline (nothing to install) and one it cannot.
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    task = EnvironmentTask(engine_settings(), tmp_path / "env", empty)
    assert task.run_blocking(timeout_s=300) is TaskState.SUCCEEDED, task.messages
    assert task.finish(bpy.context)
    assert preferences().engine_python == str(tmp_path / "env" / "bin" / "python")
    log = (tmp_path / "cache" / "engine.log").read_text()
    assert "-m venv" in log and "pip install" in log
    broken = tmp_path / "broken.txt"
    broken.write_text(f"{tmp_path / 'no-such-package-1.0-py3-none-any.whl'}\n")
    failing = EnvironmentTask(engine_settings(), tmp_path / "env", broken)
    assert failing.run_blocking(timeout_s=300) is TaskState.FAILED
    assert "pip install failed" in failing.messages[-1].text and "engine.log" in failing.messages[-1].text
