"""Bodies, keyframe write-back, region display and AMASS files in real headless Blender,
on a small rig description with the engine's NPZ keys (tests/support/small_rig.py)."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from mathutils import Euler

from support import small_rig
from support.blender_helpers import action_digest, enabled_addon, evaluated_world_vertices, scene_digest  # noqa: F401

Y_UP_TO_Z_UP = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])


def _add_body(tmp_path, name, model_to_world=None):
    rig_path = tmp_path / f"{name}.npz"
    data = small_rig.make_rig(rig_path, model_to_world)
    assert bpy.ops.prosepose.add_body(rig_file=str(rig_path), name=name) == {"FINISHED"}
    return data, bpy.data.objects[name]


def _engine_pose(seed):
    rng = np.random.default_rng(seed)
    rotations = {}
    for joint in small_rig.JOINTS:
        q = rng.normal(size=4)
        q[0] = abs(q[0]) + 1.0
        rotations[joint] = tuple(q / np.linalg.norm(q))
    return rotations, tuple(rng.normal(scale=0.2, size=3))


def test_add_body_builds_armature_mesh_groups_and_modifier(enabled_addon, tmp_path):
    data, armature = _add_body(tmp_path, "P1")
    mesh = armature.children[0]
    assert [b.name for b in armature.data.bones] == list(small_rig.JOINTS)
    assert [b.parent.name if b.parent else None for b in armature.data.bones] == [None, "root", "spine"]
    for index, bone in enumerate(armature.data.bones):
        assert np.allclose(np.asarray(bone.matrix_local), data["rest_joint_frames"][index], atol=1e-5)
    assert len(mesh.data.vertices) == len(data["vertices"]) and len(mesh.data.polygons) == len(data["faces"])
    assert [g.name for g in mesh.vertex_groups] == list(small_rig.JOINTS)
    assert mesh.modifiers[0].type == "ARMATURE" and mesh.modifiers[0].object == armature
    assert bpy.context.scene.prose.person_1 == armature


@pytest.mark.parametrize("model_to_world", [None, Y_UP_TO_Z_UP], ids=["z-up", "y-up"])
def test_engine_pose_as_keyframes_matches_engine_skinning(enabled_addon, tmp_path, model_to_world):
    from prosepose.prose_blender import bodies, keyframes, poses

    data, armature = _add_body(tmp_path, "P1", model_to_world)
    # An artist's extra placement of the object is folded into the root joint both ways.
    armature.location = (0.7, -0.3, 0.1)
    armature.rotation_euler = (Euler((0.0, 0.0, 0.4)).to_matrix() @ armature.matrix_world.to_3x3()).to_euler()
    bpy.context.view_layer.update()
    info = bodies.body_info(armature)
    rotations, translation = _engine_pose(3)
    bone_pose = poses.bone_pose_from_engine(armature, info, poses.EnginePose(rotations, translation))
    keyframes.write_pose_action(armature, [5], [bone_pose], "refined")
    bpy.context.scene.frame_set(5)
    read_back = poses.read_engine_pose(armature, info)
    for joint in small_rig.JOINTS:
        assert abs(abs(np.dot(read_back.rotations[joint], rotations[joint])) - 1) < 1e-6
    assert np.allclose(read_back.root_translation, translation, atol=1e-6)
    expected = small_rig.posed_vertices(data, rotations, translation)
    error = np.abs(evaluated_world_vertices(armature.children[0]) - expected).max()
    print(f"max vertex error {error:.2e} m")
    assert error < 1e-4


def test_refined_keys_go_on_a_new_track_above_an_untouched_original(enabled_addon, tmp_path):
    from prosepose.prose_blender import bodies, keyframes, poses

    _, armature = _add_body(tmp_path, "P1")
    bone = armature.pose.bones["spine"]
    for frame, angle in ((1, 0.0), (10, 0.5)):
        bone.rotation_quaternion = Euler((angle, 0, 0)).to_quaternion()
        bone.keyframe_insert("rotation_quaternion", frame=frame)
    original = armature.animation_data.action
    before = action_digest(original)
    info = bodies.body_info(armature)
    rotations, translation = _engine_pose(4)
    bone_pose = poses.bone_pose_from_engine(armature, info, poses.EnginePose(rotations, translation))
    written = keyframes.write_pose_action(armature, [4], [bone_pose], "P1_refined")
    assert action_digest(original) == before
    tracks = armature.animation_data.nla_tracks
    assert [t.strips[0].action for t in tracks] == [original, written.action]
    assert armature.animation_data.action is None
    bpy.context.scene.frame_set(4)
    assert abs(abs(armature.pose.bones["arm"].rotation_quaternion.dot(rotations["arm"])) - 1) < 1e-6
    bpy.context.scene.frame_set(10)
    assert abs(armature.pose.bones["spine"].rotation_quaternion.dot(Euler((0.5, 0, 0)).to_quaternion())) > 1 - 1e-6


def test_show_regions_colours_contacts_and_hide_restores_the_mesh(enabled_addon, tmp_path):
    data, armature = _add_body(tmp_path, "P1")
    mesh = armature.children[0].data
    before = scene_digest()
    prose = bpy.context.scene.prose
    contact = prose.contacts.add()
    contact.source, contact.part_a, contact.person_a, contact.part_b, contact.person_b = "ARTIST", "upper", 1, "ground", 1
    spaces = [s for w in bpy.context.window_manager.windows for a in w.screen.areas for s in a.spaces if s.type == "VIEW_3D"]
    shading_before = [s.shading.color_type for s in spaces]
    assert bpy.ops.prosepose.show_regions() == {"FINISHED"}
    assert all(s.shading.color_type == "VERTEX" for s in spaces if s.shading.type == "SOLID")
    colours = np.zeros(len(mesh.vertices) * 4, dtype=np.float32)
    mesh.color_attributes["prosepose_regions"].data.foreach_get("color", colours)
    colours = colours.reshape(-1, 4)
    upper = data["region_vertex_ids"][data["region_offsets"][1]:]
    lower = data["region_vertex_ids"][: data["region_offsets"][1]]
    assert np.ptp(colours[upper], axis=0).max() == 0 and np.abs(colours[upper] - colours[lower[0]]).max() > 0.1
    assert mesh.materials[0].name == "ProsePose Regions"
    prose.contacts.remove(0)
    assert bpy.ops.prosepose.hide_regions() == {"FINISHED"}
    assert scene_digest() == before
    assert "ProsePose Regions" not in bpy.data.materials
    assert [s.shading.color_type for s in spaces] == shading_before


def test_amass_clip_imports_and_exports_the_same_parameters(enabled_addon, tmp_path):
    from prosepose.prose_blender import amass

    _, armature = _add_body(tmp_path, "P1", Y_UP_TO_Z_UP)
    rng = np.random.default_rng(7)
    poses = rng.normal(scale=0.4, size=(3, 3 * len(small_rig.JOINTS)))
    trans = rng.normal(scale=0.3, size=(3, 3))
    clip_path = tmp_path / "clip.npz"
    np.savez(clip_path, poses=poses, trans=trans, betas=np.zeros(2), gender="neutral", mocap_framerate=np.float64(bpy.context.scene.render.fps))
    assert bpy.ops.prosepose.import_animation(filepath=str(clip_path), start_frame=1) == {"FINISHED"}
    out = tmp_path / "out.npz"
    amass.export_clip(bpy.context.scene, armature, [1, 2, 3], out, tmp_path / "out.contacts.json")
    # The small rig is an Anny-kind body: its export is Anny's own file (no AMASS names), the
    # clip's axis-angle joints as quaternions in the rest frames and its translation.
    from mathutils import Quaternion, Vector

    with np.load(out) as exported:
        assert str(exported["surface_model_type"]) == "anny" and "poses" not in exported.files
        assert np.allclose(exported["root_translation"], trans, atol=1e-5)
        rotations = exported["rotations"]
        for t in range(3):
            for j in range(len(small_rig.JOINTS)):
                axis_angle = Vector(poses[t, 3 * j: 3 * j + 3])
                expected = np.asarray(Quaternion(axis_angle.normalized(), axis_angle.length))
                # The export writes each rotation in its joint's rest frame, the clip in the model's
                # axes (this rig's rest frames are turned from Y up to Z up): the same turn, so the
                # same angle.
                assert abs(abs(float(rotations[t, j][0])) - abs(float(expected[0]))) < 1e-4
