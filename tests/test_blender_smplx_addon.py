"""Issue 17 item 1: a body built like the official SMPL-X add-on's (tests/support/smplx_addon_body.py,
from the generated SMPL-X file) is used as a subject as it is: its pose is read in the engine's
convention, a real Refine is written back in the add-on's convention (the ``root`` bone never
keyed, the original action unchanged), and Blender's own deform of the refined pose matches the
engine's vertices within 1 mm."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import bpy
import numpy as np
import pytest

from conftest import REPO_ROOT
from support.blender_helpers import action_digest, action_fcurves, enabled_addon, evaluated_world_vertices  # noqa: F401
from support.smplx_addon_body import build_addon_body, key_addon_frame

# The engine runs in its own interpreter (this test also runs on Blender 4.2's, which has no torch).
ENGINE_PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")
BETAS = np.array([0.8, -0.5, 0.3, 0.0, 0.2, -0.1, 0.0, 0.1, 0.0, -0.2])


@pytest.fixture(scope="module")
def addon_model_file(tmp_path_factory):
    """The generated SMPL-X file (tests/support/addon_model_file.py), written by the engine's
    interpreter."""
    path = tmp_path_factory.mktemp("smplx_addon_model") / "SMPLX_NEUTRAL.npz"
    subprocess.run([ENGINE_PYTHON, str(REPO_ROOT / "tests" / "support" / "smplx_model_file.py"), str(path)], check=True, timeout=300)
    return path


def engine_vertices(model_file, shape, poses, folder: Path) -> np.ndarray:
    """(P, V, 3) the engine's world vertices of engine-convention poses."""
    request = folder / "forward.json"
    request.write_text(json.dumps({"shape": list(shape), "poses": [
        {"rotations": {k: list(v) for k, v in dict(p["rotations"]).items()}, "root_translation": list(p["root_translation"])}
        for p in poses]}))
    out = folder / "forward.npz"
    script = REPO_ROOT / "tests" / "support" / "smplx_forward_script.py"
    subprocess.run([ENGINE_PYTHON, str(script), str(model_file), str(request), str(out)], check=True, timeout=300)
    with np.load(out) as data:
        return data["vertices"]


@pytest.mark.parametrize("amass", [False, True], ids=["addon_pose", "amass_clip"])
def test_smplx_addon_body_is_read_refined_and_written_in_its_convention(enabled_addon, addon_model_file, tmp_path, amass):
    from prosepose.prose_blender import bodies, poses
    from prosepose.prose_blender.settings import ProseError
    from prosepose.prose_blender.smplx_addon import SMPLX_JOINTS

    prefs = bpy.context.preferences.addons["prosepose"].preferences
    prefs.engine_python = ENGINE_PYTHON
    prefs.smplx_model_folder = str(addon_model_file)
    scene = bpy.context.scene
    armature, mesh = build_addon_body(addon_model_file, SMPLX_JOINTS, BETAS)
    rng = np.random.default_rng(3)
    for frame in (1, 10):
        pose = rng.normal(scale=0.15, size=(55, 3))
        # AMASS trans is in SMPL-X's frame with Z up (the root bone stands it up); else Y up.
        trans = np.array([0.1, 0.05, 0.9]) if amass else np.array([0.1, 1.1, -0.05])
        key_addon_frame(armature, SMPLX_JOINTS, frame, pose, trans + rng.normal(scale=0.02, size=3), amass)
    armature.location = (0.4, -0.3, 0.0)  # the add-on's 'snap to ground' moves the object
    original = armature.animation_data.action
    original_digest = action_digest(original)
    scene.frame_set(10)

    with pytest.raises(ProseError, match="Use SMPL-X add-on body"):
        bodies.body_info(armature)
    bpy.context.view_layer.objects.active = mesh  # selecting the mesh is enough
    assert bpy.ops.prosepose.use_smplx_addon_body() == {"FINISHED"}
    assert scene.prose.person_1 == armature
    info = bodies.body_info(armature)
    assert info.convention == "smplx_addon" and info.shape[:3] == pytest.approx(BETAS[:3], abs=1e-6)
    regions = bodies.mesh_regions(mesh.data)
    assert {"head", "left_hand", "right_hand"} <= set(regions)

    # Reading: the engine's vertices of the pose read from the armature are Blender's.
    read = poses.read_engine_pose(armature, info)
    blender_read = evaluated_world_vertices(mesh)

    # A real Refine: Person 1's right hand to its head, written back in the add-on's convention.
    contact = scene.prose.contacts.add()
    contact.source, contact.enabled = "ARTIST", True
    contact.part_a, contact.person_a, contact.part_b, contact.person_b = "right_hand", 1, "head", 1
    scene.prose.iterations = 40
    assert bpy.ops.prosepose.refine() == {"FINISHED"}
    cache = Path(prefs.cache_folder)
    result = json.loads(next(cache.rglob("*-result.json")).read_text())
    refined = result["frames"][0]["people"][0]
    scene.frame_set(10)
    blender = evaluated_world_vertices(mesh)
    read_pose = {"rotations": read.rotations, "root_translation": read.root_translation}
    engine_read, engine = engine_vertices(addon_model_file, info.shape, [read_pose, refined], tmp_path)
    read_error = np.abs(blender_read - engine_read).max()
    write_error = np.abs(blender - engine).max()
    print(f"SMPL-X add-on body ({'AMASS' if amass else 'pose'}): read {read_error * 1000:.4f} mm, "
          f"refined write-back {write_error * 1000:.4f} mm (Blender deform vs engine)")
    assert read_error < 1e-3
    assert write_error < 1e-3
    assert np.abs(engine - engine_read).max() > 0.01  # the refinement moved the body
    # Non-destructive, in the add-on's convention: the original action is bit-identical, the
    # refinement keys quaternions on the joints and the pelvis location, never the root bone.
    assert action_digest(original) == original_digest
    track = armature.animation_data.nla_tracks[-1]
    paths = {c.data_path for c in action_fcurves(track.strips[0].action)}
    assert 'pose.bones["pelvis"].location' in paths and 'pose.bones["left_wrist"].rotation_quaternion' in paths
    assert not any('"root"' in p for p in paths)
    assert all(b.bone.matrix_local.to_quaternion().angle < 1e-6 for b in armature.pose.bones)
