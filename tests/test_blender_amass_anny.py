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
