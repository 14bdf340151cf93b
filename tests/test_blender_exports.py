"""Issue 17 item 3: exports say what they are. An SMPL-X subject (here the SMPL-X add-on's
convention, AMASS-keyed) exports an AMASS-style file (poses (T, 165), trans, betas, gender,
mocap_frame_rate, surface_model_type) whose re-import reproduces the scene within 1 mm; an
Anny subject exports Anny's own joint names and keys, never AMASS names."""

from __future__ import annotations

import bpy
import numpy as np

from support.blender_helpers import enabled_addon, evaluated_world_vertices  # noqa: F401
from support.smplx_addon_body import build_addon_body, key_addon_frame
from test_blender_smplx_addon import BETAS, ENGINE_PYTHON, addon_model_file  # noqa: F401

AMASS_NAMES = {"poses", "trans", "betas", "root_orient", "pose_body", "pose_hand", "mocap_framerate", "mocap_frame_rate"}


def test_smplx_export_is_amass_and_reimports_within_a_millimetre(enabled_addon, addon_model_file, tmp_path):
    from prosepose.prose_blender import amass
    from prosepose.prose_blender.smplx_addon import SMPLX_JOINTS

    prefs = bpy.context.preferences.addons["prosepose"].preferences
    prefs.engine_python = ENGINE_PYTHON
    prefs.smplx_model_folder = str(addon_model_file)
    scene = bpy.context.scene
    armature, mesh = build_addon_body(addon_model_file, SMPLX_JOINTS, BETAS, pose_keys=0)
    rng = np.random.default_rng(5)
    key_addon_frame(armature, SMPLX_JOINTS, 10, rng.normal(scale=0.2, size=(55, 3)), np.array([0.3, -0.2, 0.95]), True)
    armature.location = (0.2, 0.1, 0.0)
    bpy.context.view_layer.objects.active = armature
    assert bpy.ops.prosepose.use_smplx_addon_body() == {"FINISHED"}
    scene.frame_set(10)
    before = evaluated_world_vertices(mesh)
    target = tmp_path / "export.npz"
    amass.export_clip(scene, armature, [10], target, None)
    with np.load(target) as data:
        assert data["poses"].shape == (1, 165) and data["trans"].shape == (1, 3)
        assert str(data["surface_model_type"]) == "smplx" and str(data["gender"]) == "neutral"
        assert float(data["mocap_frame_rate"]) == scene.render.fps
        assert np.allclose(data["betas"], BETAS, atol=1e-6)
    clip = amass.load_clip(target)
    amass.import_clip(scene, armature, clip, 30)
    scene.frame_set(30)
    error = np.abs(evaluated_world_vertices(mesh) - before).max()
    print(f"SMPL-X export -> re-import: max vertex error {error * 1000:.4f} mm")
    assert error < 1e-3


def test_anny_export_uses_annys_own_names(enabled_addon, tmp_path):
    from prosepose.prose_blender import amass, bodies

    bpy.context.preferences.addons["prosepose"].preferences.engine_python = ENGINE_PYTHON
    assert bpy.ops.prosepose.add_body(kind="anny", name="P1") == {"FINISHED"}
    armature = bpy.data.objects["P1"]
    armature.pose.bones["upperarm01.L"].rotation_quaternion = (0.9, 0.1, 0.3, 0.1)
    target = tmp_path / "anny.npz"
    amass.export_clip(bpy.context.scene, armature, [1], target, None)
    with np.load(target) as data:
        assert not AMASS_NAMES & set(data.files)
        assert str(data["surface_model_type"]) == "anny"
        assert tuple(data["joint_names"]) == bodies.body_info(armature).joint_names
        assert data["rotations"].shape == (1, 104, 4) and data["root_translation"].shape == (1, 3)
        row = list(data["joint_names"]).index("upperarm01.L")
        q = np.array([0.9, 0.1, 0.3, 0.1]) / np.linalg.norm([0.9, 0.1, 0.3, 0.1])
        assert np.allclose(data["rotations"][0, row], q, atol=1e-5)
