"""Issue 17 item 2: an AMASS SMPL-X clip imported onto the built-in Anny body is retargeted by
anatomy (prose_blender/retarget.py), not mapped joint by index: on generated SMPL-X poses the
upper arms, forearms, thighs, shins, spine and neck of the imported Anny armature (Blender's own
pose evaluation) point where the SMPL-X skeleton's do, within 1 degree; ``mocap_frame_rate``
is read and the clip resampled to the scene's rate."""

from __future__ import annotations

import bpy
import numpy as np

from conftest import REPO_ROOT
from support.blender_helpers import enabled_addon  # noqa: F401

ENGINE_PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")


def test_amass_clip_on_anny_keeps_bone_directions(enabled_addon, tmp_path):
    from prosepose.prose_blender import retarget

    bpy.context.preferences.addons["prosepose"].preferences.engine_python = ENGINE_PYTHON
    assert bpy.ops.prosepose.add_body(kind="anny", name="P1") == {"FINISHED"}
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    poses, trans = retarget.sample_poses(24, seed=11)
    clip = tmp_path / "clip.npz"
    np.savez(clip, poses=poses, trans=trans, betas=np.zeros(16), gender=np.str_("neutral"),
             mocap_frame_rate=np.float64(60.0), surface_model_type=np.str_("smplx"))
    assert bpy.ops.prosepose.import_animation(filepath=str(clip), person=1, start_frame=1) == {"FINISHED"}
    armature = bpy.data.objects["P1"]
    # 60 fps -> 30 fps: scene frame 1 + k is clip frame 2k.
    kept = np.arange(0, len(poses), 2)
    joints = retarget.smplx_world_joints(poses[kept, :66], trans[kept], retarget.CANONICAL_REST_JOINTS)
    smplx = {n: i for i, n in enumerate(retarget.SMPLX_JOINTS)}
    errors = {bone: [] for bone in retarget.MEASURED_BONES}
    for k in range(len(kept)):
        scene.frame_set(1 + k)
        heads = {b.name: np.asarray(armature.matrix_world @ b.head) for b in armature.pose.bones}
        for bone, ((s0, s1), (t0, t1)) in retarget.MEASURED_BONES.items():
            a = joints[k, smplx[s1]] - joints[k, smplx[s0]]
            b = heads[t1] - heads[t0]
            errors[bone].append(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))
    every = np.concatenate([np.asarray(v) for v in errors.values()])
    print("bone direction error (deg): " + ", ".join(f"{bone} {np.median(v):.2f}/{np.max(v):.2f}" for bone, v in errors.items()))
    print(f"all bones: median {np.median(every):.3f} deg, worst {every.max():.2f} deg over {len(kept)} frames")
    assert np.median(every) < 1.0
    for bone, values in errors.items():
        assert np.median(values) < 10.0, bone
    # The spine too: SMPL-X's three spine joints spread over Anny's five spine bones by rest
    # length (retarget.ChainMap), the chain's end turned onto SMPL-X's.
    assert max(max(errors[b]) for b in retarget.MEASURED_BONES) < 1.0
    action = armature.animation_data.action
    assert action is not None and action.frame_range[1] - action.frame_range[0] + 1 == len(kept)


def _bone_errors(joints, heads_per_frame, smplx_names=None):
    from prosepose.prose_blender import retarget

    smplx = {n: i for i, n in enumerate(retarget.SMPLX_JOINTS)}
    errors = {bone: [] for bone in retarget.MEASURED_BONES}
    for k, heads in enumerate(heads_per_frame):
        for bone, ((s0, s1), (t0, t1)) in retarget.MEASURED_BONES.items():
            a = joints[k, smplx[s1]] - joints[k, smplx[s0]]
            b = heads[t1] - heads[t0]
            errors[bone].append(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))
    return {bone: np.asarray(v) for bone, v in errors.items()}


def _evaluated_heads(scene, armature, frames):
    out = []
    for frame in frames:
        scene.frame_set(frame)
        out.append({b.name: np.asarray(armature.matrix_world @ b.head) for b in armature.pose.bones})
    return out


def test_anny_animation_exports_as_smplx_through_the_inverse_retarget(enabled_addon, tmp_path, capsys):
    """Issue 17 item 3, last point: Export SMPL-X parameters with 'Anny body as: SMPL-X' writes
    an AMASS-style file through the inverse retarget (Retarget.inverse) and reports (and prints)
    its bone-direction error. The SMPL-X skeleton the file poses points its upper arms, forearms,
    thighs, shins, spine and neck where Blender's evaluated Anny bones point, and an SMPL-X clip
    imported onto Anny and exported back gives the clip's own bone directions and pelvis path."""
    from prosepose.prose_blender import retarget

    bpy.context.preferences.addons["prosepose"].preferences.engine_python = ENGINE_PYTHON
    assert bpy.ops.prosepose.add_body(kind="anny", name="P1") == {"FINISHED"}
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    poses, trans = retarget.sample_poses(8, seed=21)
    clip = tmp_path / "clip.npz"
    np.savez(clip, poses=poses, trans=trans, betas=np.zeros(10), gender=np.str_("neutral"),
             mocap_frame_rate=np.float64(30.0), surface_model_type=np.str_("smplx"))
    assert bpy.ops.prosepose.import_animation(filepath=str(clip), person=1, start_frame=1) == {"FINISHED"}
    armature = bpy.data.objects["P1"]
    # A hand-made change on top of the clip at frame 3: the export follows the scene, not the clip.
    scene.frame_set(3)
    armature.pose.bones["lowerarm01.L"].rotation_quaternion = (0.8, 0.2, 0.5, -0.1)
    armature.keyframe_insert('pose.bones["lowerarm01.L"].rotation_quaternion', frame=3)
    scene.prose.frame_mode = "RANGE"
    scene.prose.frame_start, scene.prose.frame_end = 1, len(poses)
    target = tmp_path / "anny_as_smplx.npz"
    capsys.readouterr()
    assert bpy.ops.prosepose.export_smplx(filepath=str(target), person=1, write_contacts=False, anny_format="SMPLX") == {"FINISHED"}
    printed = capsys.readouterr().out
    assert "bone-direction error median" in printed and "canonical SMPL-X skeleton" in printed
    print(printed.strip())
    with np.load(target) as data:
        assert data["poses"].shape == (len(poses), 165) and data["trans"].shape == (len(poses), 3)
        assert str(data["surface_model_type"]) == "smplx" and str(data["retargeted_from"]) == "anny"
        assert float(data["mocap_frame_rate"]) == 30.0 and str(data["gender"]) == "neutral"
        assert np.allclose(data["pose_body"], data["poses"][:, 3:66])
        exported_poses, exported_trans = data["poses"].astype(np.float64), data["trans"].astype(np.float64)
    joints = retarget.smplx_world_joints(exported_poses[:, :66], exported_trans, retarget.CANONICAL_REST_JOINTS)
    heads = _evaluated_heads(scene, armature, range(1, len(poses) + 1))
    # Directions: Anny's model frame is its armature's world up to a lift (it stands on the floor).
    assert np.allclose(np.asarray(armature.matrix_world)[:3, :3], np.eye(3), atol=1e-6)
    errors = _bone_errors(joints, heads)
    every = np.concatenate(list(errors.values()))
    print(f"Anny -> SMPL-X export vs Blender's Anny bones: median {np.median(every):.3f} deg, worst {every.max():.3f} deg")
    assert every.max() < 1.0
    # Round trip: frames other than the hand-edited one give the clip back.
    original = retarget.smplx_world_joints(poses[:, :66], trans, retarget.CANONICAL_REST_JOINTS)
    kept = [k for k in range(len(poses)) if k != 2]
    trip = _bone_errors(original[kept], [heads[k] for k in kept])
    assert max(v.max() for v in trip.values()) < 1.0
    pelvis_error = np.abs(exported_trans[kept] - trans[kept]).max()
    print(f"clip -> Anny -> SMPL-X pelvis path error {pelvis_error * 1000:.3f} mm")
    assert pelvis_error < 1e-3


def test_amass_on_anny_uses_the_model_files_rest_joints(enabled_addon, tmp_path):
    """Issue 17 item 2: with an SMPL-X model file in the preferences, an AMASS clip on Anny is
    retargeted on that file's exact rest joints (shaped by the clip's betas), and says so."""
    import subprocess

    from conftest import REPO_ROOT as ROOT
    from prosepose.prose_blender import amass, retarget

    model = tmp_path / "models" / "SMPLX_NEUTRAL.npz"
    model.parent.mkdir()
    subprocess.run([ENGINE_PYTHON, str(ROOT / "tests" / "support" / "smplx_model_file.py"), str(model)], check=True, timeout=300)
    prefs = bpy.context.preferences.addons["prosepose"].preferences
    prefs.engine_python = ENGINE_PYTHON
    prefs.smplx_model_folder = str(model.parent)
    assert bpy.ops.prosepose.add_body(kind="anny", name="P1") == {"FINISHED"}
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 30, 1.0
    poses, trans = retarget.sample_poses(6, seed=4)
    betas = np.array([1.5, -1.0, 0.5, 0, 0, 0, 0, 0, 0, 0])
    clip = amass.MotionClip(poses, trans, betas, "female", 30.0)  # no female file: the neutral one
    armature = bpy.data.objects["P1"]
    _, messages = amass.import_clip(scene, armature, clip, 1)
    assert any("rest joints of SMPLX_NEUTRAL.npz" in m for m in messages), messages
    with np.load(model) as data:
        exact = data["J_regressor"].astype(np.float64) @ (data["v_template"] + data["shapedirs"][..., :10] @ betas)
    assert np.abs(exact - retarget.CANONICAL_REST_JOINTS).max() > 0.01  # a different skeleton
    heads = _evaluated_heads(scene, armature, range(1, len(poses) + 1))
    on_exact = _bone_errors(retarget.smplx_world_joints(poses[:, :66], trans, exact[:55]), heads)
    on_canonical = _bone_errors(retarget.smplx_world_joints(poses[:, :66], trans, retarget.CANONICAL_REST_JOINTS), heads)
    worst_exact = max(v.max() for v in on_exact.values())
    worst_canonical = max(v.max() for v in on_canonical.values())
    print(f"bone directions vs the model file's skeleton: worst {worst_exact:.3f} deg (vs the canonical one: {worst_canonical:.2f} deg)")
    assert worst_exact < 1.0 < worst_canonical
    # A .pkl is not read on Blender's side: the canonical skeleton, with a reason.
    prefs.smplx_model_folder = str(tmp_path / "SMPLX_NEUTRAL.pkl")
    (tmp_path / "SMPLX_NEUTRAL.pkl").write_bytes(b"\x80\x04N.")
    joints, phrase = amass.smplx_rest_joints(None, "neutral", None)
    assert joints is None and "not an .npz" in phrase
