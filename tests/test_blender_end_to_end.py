"""End to end: two Anny bodies, Find contacts through the loopback OpenAI-compatible server and
the real engine, then Refine with the real engine: the named regions move into contact, the
result is a new action on each subject's 'ProsePose refinement' NLA track, the original action is
bit-identical on its own track below it, and cancelling or killing a real refine leaves the scene
exactly as it was."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT
from support.blender_helpers import action_digest, enabled_addon, evaluated_world_vertices, scene_digest  # noqa: F401
from support.fake_openai_server import FakeOpenAIServer

ENGINE_PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")
HANDS = "| Person 1 part | Person 2 part |\n|---|---|\n| hand | hand |\n"


def _region_distance(scene, part_a: str, part_b: str) -> float:
    """Smallest distance between Person 1's ``part_a`` regions and Person 2's ``part_b``
    regions on the evaluated (posed) meshes, in metres."""
    from prosepose.prose_blender.bodies import mesh_regions
    from prosepose.prose_blender.subjects import scene_subjects
    from prosepose.prose_blender.vocabulary import regions_for_part

    points = []
    for subject, part in zip(scene_subjects(scene), (part_a, part_b)):
        mesh = subject.mesh
        regions = mesh_regions(mesh.data)
        ids = np.concatenate([regions[name] for name in regions_for_part(part, regions)])
        points.append(evaluated_world_vertices(mesh)[ids])
    a, b = points
    return float(np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).min())


@pytest.fixture
def two_people(enabled_addon, tmp_path):
    prefs = bpy.context.preferences.addons["prosepose"].preferences
    prefs.engine_python = ENGINE_PYTHON
    prefs.lmm_samples = 4
    prefs.lmm_api_key = "sk-e2e-not-a-real-key"
    for name in ("P1", "P2"):
        assert bpy.ops.prosepose.add_body(kind="anny", name=name) == {"FINISHED"}
    scene = bpy.context.scene
    # Face to face, 0.9 m apart (Anny faces -Y): Person 2 is turned round by its object
    # transform, which the add-on folds into the root joint for the engine and back.
    bpy.data.objects["P2"].location.xy = (0.0, -0.9)  # both stand on the floor (z = 0)
    bpy.data.objects["P2"].rotation_euler = (0.0, 0.0, np.pi)
    # The original animation: a small spine motion on Person 1.
    spine = next(b for b in bpy.data.objects["P1"].pose.bones if b.parent is not None and b.parent.parent is None)
    for frame, angle in ((1, 0.0), (20, 0.2)):
        spine.rotation_quaternion = (np.cos(angle / 2), 0, 0, np.sin(angle / 2))
        spine.keyframe_insert("rotation_quaternion", frame=frame)
    scene.frame_set(10)
    image = tmp_path / "reference.png"
    Image.new("RGB", (320, 240), (170, 140, 120)).save(image)
    scene.prose.reference_image = str(image)
    scene.prose.iterations = 60
    return scene


def test_find_contacts_then_refine_brings_the_regions_together(two_people):
    scene = two_people
    original = bpy.data.objects["P1"].animation_data.action
    original_digest = action_digest(original)
    with FakeOpenAIServer(texts=[HANDS]) as server:
        bpy.context.preferences.addons["prosepose"].preferences.lmm_base_url = server.base_url
        assert bpy.ops.prosepose.find_contacts() == {"FINISHED"}
    assert [(c.part_a, c.person_a, c.part_b, c.person_b, c.count) for c in scene.prose.contacts] == [("hand", 1, "hand", 2, 4)]
    contact = scene.prose.contacts[0]
    shown_from = scene_digest()
    assert bpy.ops.prosepose.show_regions() == {"FINISHED"}
    for name in ("P1", "P2"):
        mesh = bpy.data.objects[f"{name}_body"].data
        colours = np.zeros(len(mesh.vertices) * 4, dtype=np.float32)
        mesh.color_attributes["prosepose_regions"].data.foreach_get("color", colours)
        coloured = np.ptp(colours.reshape(-1, 4)[:, :3], axis=1) > 0.1
        assert 0 < coloured.sum() < len(mesh.vertices) / 4
    assert bpy.ops.prosepose.hide_regions() == {"FINISHED"}
    assert scene_digest() == shown_from
    part_1 = contact.part_a if contact.person_a == 1 else contact.part_b
    part_2 = contact.part_b if contact.person_a == 1 else contact.part_a
    before = _region_distance(scene, part_1, part_2)
    started = time.monotonic()
    assert bpy.ops.prosepose.refine() == {"FINISHED"}
    after = _region_distance(scene, part_1, part_2)
    print(f"hand-hand distance {before:.3f} m -> {after:.3f} m in {time.monotonic() - started:.1f} s")
    assert after < 0.005 and after < before / 10
    assert action_digest(original) == original_digest
    # The refined poses are one strip on each subject's refinement track, the top track, over
    # frame 10 and its ease frames; the original action is untouched on a track below it.
    from prosepose.prose_blender.layers import PROP_STRIP, TRACK_NAME, refined_frames

    ease = scene.prose.ease_frames
    for name in ("P1", "P2"):
        armature = bpy.data.objects[name]
        tracks = armature.animation_data.nla_tracks
        assert tracks[-1].name == TRACK_NAME and not tracks[-1].mute
        assert [t.name for t in tracks].count(TRACK_NAME) == 1
        (strip,) = tracks[-1].strips
        assert strip.action.name == f"{name} refined 10" and strip.action is not original
        assert list(strip.action[PROP_STRIP]["frames"]) == [10] and strip.action[PROP_STRIP]["role"] == "refined"
        assert (strip.frame_start, strip.frame_end) == (10 - ease, 10 + ease)
        assert refined_frames(armature) == [10]
        assert armature.animation_data.action is None  # the original plays from its own track
    p1_tracks = bpy.data.objects["P1"].animation_data.nla_tracks
    assert p1_tracks[0].strips[0].action == original and not p1_tracks[0].mute
    assert len(scene.prose.results) >= 1 and scene.prose.results[0].after < scene.prose.results[0].before
    # "hand | hand" stands for either hand of each: the result row says which two made the
    # contact, and those two regions are exactly as near as the row says.
    from prosepose.panels.sidebar import result_text

    row = scene.prose.results[0]
    hand_1, hand_2 = row.nearest.split(" - ")
    assert {hand_1, hand_2} <= {"left hand", "right hand"}, row.nearest
    assert _region_distance(scene, hand_1.replace(" ", "_"), hand_2.replace(" ", "_")) == pytest.approx(row.after, abs=1e-5)
    assert f"by {row.nearest}" in result_text(row)
    print(f"result row: {row.label}: {result_text(row)}")
    # Export: the refined pose as an AMASS-style file and the contacts used.
    target = Path(bpy.context.preferences.addons["prosepose"].preferences.cache_folder) / "refined.npz"
    assert bpy.ops.prosepose.export_smplx(filepath=str(target), person=1) == {"FINISHED"}
    with np.load(target) as data:
        assert data["rotations"].shape == (1, len(bpy.data.objects["P1"].data.bones), 4) and data["root_translation"].shape == (1, 3)
    exported_contacts = json.loads(target.with_suffix(".contacts.json").read_text())
    cache = Path(bpy.context.preferences.addons["prosepose"].preferences.cache_folder)
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert any(p.name.endswith("-job.json") for p in files) and any(p.name == "engine.log" for p in files)
    assert not [p for p in files if b"sk-e2e-not-a-real-key" in p.read_bytes()]
    assert exported_contacts["frames"] == [10] and exported_contacts["contacts"][0]["samples"] == 4


@pytest.mark.parametrize("how", ["cancel", "kill"])
def test_stopping_a_real_refine_leaves_the_scene_unchanged(two_people, how):
    from prosepose.operators.refine import refine_request
    from prosepose.prose_blender.preferences import engine_settings
    from prosepose.prose_blender.refine import RefineTask
    from prosepose.prose_blender.tasks import TaskState

    scene = two_people
    contact = scene.prose.contacts.add()
    contact.source, contact.part_a, contact.person_a, contact.part_b, contact.person_b = "ARTIST", "left_hand", 1, "right_hand", 2
    scene.prose.iterations = 5000
    before = scene_digest()
    task = RefineTask(engine_settings(), scene, refine_request(scene))
    task.start()
    deadline = time.monotonic() + 120
    while task.poll() is TaskState.RUNNING and task.progress == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert task.state is TaskState.RUNNING and task.progress > 0
    if how == "cancel":
        task.cancel()
        assert task.state is TaskState.CANCELLED
    else:
        os.kill(task.process.pid, signal.SIGKILL)
        assert task.run_blocking(60) is TaskState.FAILED
        assert "stopped unexpectedly" in task.messages[-1].text
    assert task.finish(bpy.context) is False
    assert not task.result_path.exists()
    assert scene_digest() == before
