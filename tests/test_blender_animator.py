"""Issue 16, items 1-2 (also on Blender 4.2): new bodies stand on the floor, Person 2 a step
in front of Person 1 facing it, no third body; the job passes the scene's floor. Refinements
start from the original animation, a re-run replaces the earlier result, strips cover exactly
the refined frames and ease in and out, one named track per subject with an influence slider,
and Remove refinement restores the scene hash-identical."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from mathutils import Quaternion

from conftest import REPO_ROOT
from support import small_rig
from support.blender_helpers import enabled_addon, evaluated_world_vertices, scene_digest  # noqa: F401

def _rig_in_the_floor(path: Path) -> None:
    """The small rig with its lowest vertex 82 cm below the origin, and chest (front, -Y) and
    back regions."""
    data = small_rig.make_rig(path)
    world = data["vertices"].copy()
    data["vertices"] = data["vertices"] - np.array([0.0, 0.0, 0.82])
    data["rest_joint_frames"][:, 2, 3] -= 0.82
    data["bone_tails"][:, 2] -= 0.82
    upper = world[:, 2] > 0.6
    regions = {"chest": np.flatnonzero(upper & (world[:, 1] < -0.06)), "back": np.flatnonzero(upper & (world[:, 1] > 0.06))}
    data["region_names"] = np.array(list(regions))
    data["region_offsets"] = np.cumsum([0] + [len(v) for v in regions.values()]).astype(np.int32)
    data["region_vertex_ids"] = np.concatenate(list(regions.values())).astype(np.int32)
    np.savez(path, **data)


def _facing(name: str) -> np.ndarray:
    from prosepose.prose_blender.bodies import mesh_regions

    mesh = bpy.data.objects[f"{name}_body"]
    points = evaluated_world_vertices(mesh)
    regions = mesh_regions(mesh.data)
    direction = points[regions["chest"]].mean(0) - points[regions["back"]].mean(0)
    direction[2] = 0
    return direction / np.linalg.norm(direction)


def test_new_bodies_stand_on_the_floor_face_to_face_and_a_third_is_refused(enabled_addon, tmp_path):
    rig = tmp_path / "rig.npz"
    _rig_in_the_floor(rig)
    assert bpy.ops.prosepose.add_body(rig_file=str(rig), name="P1") == {"FINISHED"}
    p1 = bpy.data.objects["P1"]
    # Person 1 is turned and moved by the artist before Person 2 is added.
    p1.location.x = 1.0
    p1.rotation_euler.z += np.pi / 2
    bpy.context.view_layer.update()
    assert bpy.ops.prosepose.add_body(rig_file=str(rig), name="P2") == {"FINISHED"}
    prose = bpy.context.scene.prose
    assert (prose.person_1, prose.person_2) == (p1, bpy.data.objects["P2"])
    for name in ("P1", "P2"):
        lowest = evaluated_world_vertices(bpy.data.objects[f"{name}_body"])[:, 2].min()
        assert abs(lowest) < 1e-5, (name, lowest)
    facing_1, facing_2 = _facing("P1"), _facing("P2")
    assert np.allclose(facing_1, (1, 0, 0), atol=1e-5)
    assert np.allclose(facing_2, -facing_1, atol=1e-5)
    offset = np.asarray(bpy.data.objects["P2"].matrix_world.translation - p1.matrix_world.translation)
    assert np.allclose(offset[:2], 0.9 * facing_1[:2], atol=1e-5)
    # A third body is refused with a message saying what to do; nothing changes.
    before = scene_digest()
    objects = len(bpy.data.objects)
    with pytest.raises(RuntimeError, match="both set.*clear Person 2"):
        bpy.ops.prosepose.add_body(rig_file=str(rig), name="P3")
    assert len(bpy.data.objects) == objects and scene_digest() == before


def test_the_job_passes_the_scene_floor(enabled_addon, tmp_path):
    from prosepose.operators.refine import refine_request
    from prosepose.prose_blender.preferences import engine_settings
    from prosepose.prose_blender.refine import build_job

    rig = tmp_path / "rig.npz"
    _rig_in_the_floor(rig)
    assert bpy.ops.prosepose.add_body(rig_file=str(rig), name="P1") == {"FINISHED"}
    scene = bpy.context.scene
    contact = scene.prose.contacts.add()
    contact.source, contact.part_a, contact.person_a, contact.part_b, contact.person_b = "ARTIST", "chest", 1, "ground", 1
    # By default the floor is z = 0, where Add body stands the bodies, at every frame.
    assert build_job(scene, refine_request(scene), engine_settings())["options"]["floor_height"] == 0.0
    scene.prose.floor_height = -0.1
    assert build_job(scene, refine_request(scene), engine_settings())["options"]["floor_height"] == pytest.approx(-0.1)


# -- item 2: results never pop

def _standin(tmp_path, mode="echo"):
    script = tmp_path / "standin-python"
    script.write_text(f"#!/bin/sh\nPROSEPOSE_STANDIN={mode} exec {sys.executable} {REPO_ROOT / 'tests' / 'support' / 'standin_engine.py'} \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def _animated_pair(tmp_path):
    """Two small-rig bodies; Person 1's arm turns steadily from frame 1 to 30."""
    for index in (1, 2):
        rig = tmp_path / f"rig{index}.npz"
        small_rig.make_rig(rig)
        assert bpy.ops.prosepose.add_body(rig_file=str(rig), name=f"P{index}") == {"FINISHED"}
    arm = bpy.data.objects["P1"].pose.bones["arm"]
    for frame, angle in ((1, 0.0), (30, 1.2)):
        arm.rotation_quaternion = Quaternion((0, 0, 1), angle)
        arm.keyframe_insert("rotation_quaternion", frame=frame)
    prose = bpy.context.scene.prose
    contact = prose.contacts.add()
    contact.source, contact.part_a, contact.person_a, contact.part_b, contact.person_b = "ARTIST", "upper", 1, "upper", 2
    prefs = bpy.context.preferences.addons["prosepose"].preferences
    prefs.engine_python = _standin(tmp_path)
    return prose


def _arm(frame: int) -> Quaternion:
    bpy.context.scene.frame_set(frame)
    return bpy.data.objects["P1"].pose.bones["arm"].rotation_quaternion.normalized()


_ORIGINAL: dict[int, Quaternion] = {}


def _original_arm(frame: int) -> Quaternion:
    return _ORIGINAL[frame]


def _same(a: Quaternion, b, tol=1e-5) -> bool:
    return abs(abs(a.dot(Quaternion(b).normalized())) - 1) < tol


ECHO = Quaternion((0.8, 0.6, 0.0, 0.0))  # the stand-in engine's answer for Person 1's arm


def _last_job(tmp_path) -> dict:
    jobs = sorted((tmp_path / "cache").glob("*-job.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(jobs[-1].read_text())


def test_refinements_start_from_the_original_replace_and_ease(enabled_addon, tmp_path):
    prose = _animated_pair(tmp_path)
    scene = bpy.context.scene
    _ORIGINAL.update({f: _arm(f) for f in range(1, 31)})
    scene.frame_set(10)
    untouched = scene_digest()
    p1 = bpy.data.objects["P1"]
    # Current frame, no ease: exactly frame 10 changes (a one-key strip spans two frames).
    prose.ease_frames = 0
    scene.frame_set(10)
    assert bpy.ops.prosepose.refine() == {"FINISHED"}
    assert _same(_arm(10), ECHO)
    for frame in (9, 11):
        assert _same(_arm(frame), _original_arm(frame)), frame
    # A range over the refined frame starts from the original pose there, not the refinement.
    prose.frame_mode, prose.frame_start, prose.frame_end, prose.ease_frames = "RANGE", 8, 12, 3
    assert bpy.ops.prosepose.refine() == {"FINISHED"}
    job = _last_job(tmp_path)
    arm_at_10 = next(f for f in job["frames"] if f["frame"] == 10)["people"][0]["rotations"]["arm"]
    assert _same(Quaternion(arm_at_10), _original_arm(10))
    # One named track per subject; strips cover the refined frames and ease in and out.
    tracks = [t for t in p1.animation_data.nla_tracks if t.name == "ProsePose refinement"]
    assert len(tracks) == 1 and len(tracks[0].strips) == 1
    strip = tracks[0].strips[0]
    assert (strip.frame_start, strip.frame_end) == (5, 15)
    for frame in range(8, 13):
        assert _same(_arm(frame), ECHO), frame
    for frame in (4, 5, 15, 16):
        assert _same(_arm(frame), _original_arm(frame)), frame
    # In the ease frames the correction fades: between the original and the refinement.
    def angle(a, b):
        return a.rotation_difference(b).angle
    easing = [angle(_arm(f), _original_arm(f)) for f in (5, 6, 7, 8)]
    assert easing[0] < 1e-4 and easing[0] < easing[1] < easing[2] < easing[3]
    # A re-run over part of the range replaces the result there and keeps the rest.
    prose.frame_start, prose.frame_end = 11, 11
    assert bpy.ops.prosepose.refine() == {"FINISHED"}
    assert len([t for t in p1.animation_data.nla_tracks if t.name == "ProsePose refinement"]) == 1
    for frame in range(8, 13):
        assert _same(_arm(frame), ECHO), frame
    # The influence slider: 0 shows the original, 1 the refinement.
    prose.refinement_influence = 0.0
    assert _same(_arm(10), _original_arm(10))
    prose.refinement_influence = 1.0
    assert _same(_arm(10), ECHO)
    # Remove refinement: the scene exactly as it was before the first refine.
    assert bpy.ops.prosepose.remove_refinement() == {"FINISHED"}
    scene.frame_set(10)
    assert scene_digest() == untouched


def test_refining_a_static_pose_and_removing_it_restores_the_pose(enabled_addon, tmp_path):
    """A subject without animation: its hand-set pose holds outside the refined frames and
    comes back exactly after Remove refinement."""
    prose = _animated_pair(tmp_path)
    p2 = bpy.data.objects["P2"]
    p2.pose.bones["spine"].rotation_quaternion = Quaternion((1, 0, 0), 0.3)
    scene = bpy.context.scene
    scene.frame_set(10)
    before = scene_digest()
    spine = p2.pose.bones["spine"].rotation_quaternion.copy()
    assert bpy.ops.prosepose.refine() == {"FINISHED"}
    for frame in (1, 10, 20):
        scene.frame_set(frame)
        assert _same(p2.pose.bones["spine"].rotation_quaternion.normalized(), spine), frame
    assert bpy.ops.prosepose.remove_refinement() == {"FINISHED"}
    scene.frame_set(10)
    assert scene_digest() == before


# -- item 3 (on 4.2 too: no PIL there, so the reference image is written by hand)

def _png(path: Path, width=64, height=48) -> None:
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes((180, 150, 120)) * width for _ in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


NAMED_REGIONS = {"right_hand": range(0, 24), "left_hand": range(24, 48), "back": range(72, 96), "left_shoulder_front": range(120, 156)}


def test_list_rows_and_show_regions_name_the_right_people(enabled_addon, tmp_path):
    from support.fake_openai_server import FakeOpenAIServer
    from support.layout_recorder import draw_panel

    answer = "| Person 1 part | Person 2 part |\n|---|---|\n| right hand | left shoulder (front) |\n"
    reversed_answer = "| Person 1 part | Person 2 part |\n|---|---|\n| left shoulder (front) | right hand |\n"
    for index in (1, 2):
        path = tmp_path / f"rig{index}.npz"
        data = small_rig.make_rig(path)
        names = list(NAMED_REGIONS)
        data["region_names"] = np.array(names)
        data["region_offsets"] = np.cumsum([0] + [len(NAMED_REGIONS[n]) for n in names]).astype(np.int32)
        data["region_vertex_ids"] = np.concatenate([np.asarray(NAMED_REGIONS[n]) for n in names]).astype(np.int32)
        np.savez(path, **data)
        assert bpy.ops.prosepose.add_body(rig_file=str(path), name=f"P{index}") == {"FINISHED"}
    image = tmp_path / "reference.png"
    _png(image)
    prose = bpy.context.scene.prose
    prose.reference_image = str(image)
    prefs = bpy.context.preferences.addons["prosepose"].preferences
    prefs.engine_python, prefs.lmm_api_key, prefs.lmm_samples = str(REPO_ROOT / ".venv" / "bin" / "python"), "sk-test", 4
    with FakeOpenAIServer(texts=[answer, reversed_answer, answer, ""]) as server:
        prefs.lmm_base_url = server.base_url
        assert bpy.ops.prosepose.find_contacts() == {"FINISHED"}
    [contact] = list(prose.contacts)
    assert (contact.person_a, contact.part_a, contact.person_b, contact.part_b) == (1, "right hand", 2, "left shoulder (front)")
    recorder = draw_panel(bpy.types.PROSEPOSE_PT_contacts)
    assert ("label", "P1 right hand - P2 left shoulder (front)") in recorder.calls
    assert bpy.ops.prosepose.show_regions() == {"FINISHED"}
    for name, region in (("P1", "right_hand"), ("P2", "left_shoulder_front")):
        mesh = bpy.data.objects[f"{name}_body"].data
        colours = np.zeros(len(mesh.vertices) * 4, dtype=np.float32)
        mesh.color_attributes["prosepose_regions"].data.foreach_get("color", colours)
        coloured = set(np.flatnonzero(np.ptp(colours.reshape(-1, 4)[:, :3], axis=1) > 0.1).tolist())
        assert coloured == set(NAMED_REGIONS[region]), name
