"""Issue 20 in Blender: "Refine range" sends the range as one sequence job to the real engine;
the contact holds on every frame of its interval, frames outside the interval and its eases
keep the original pose, the correction eases in, the interval is drawn as timeline markers,
and the original action is bit-identical."""

from __future__ import annotations

import json

import bpy
import numpy as np
import pytest

from conftest import REPO_ROOT
from support.blender_helpers import action_digest, enabled_addon, evaluated_world_vertices  # noqa: F401

ENGINE_PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")
FRAMES = range(1, 10)
INTERVAL = (4, 6)
EASE = 2


def _clip():
    """Two Anny bodies face to face (Add body: 0.9 m apart), Person 1 swaying 2 cm sideways
    over frames 1-9; an artist contact P1 right hand - P2 left hand (holding hands) over
    frames 4-6, easing over 2 frames each side."""
    prefs = bpy.context.preferences.addons["prosepose"].preferences
    prefs.engine_python = ENGINE_PYTHON
    for name in ("P1", "P2"):
        assert bpy.ops.prosepose.add_body(kind="anny", name=name) == {"FINISHED"}
    p1 = bpy.data.objects["P1"]
    root = p1.pose.bones[0]
    for frame, x in ((1, 0.0), (5, 0.02), (9, 0.0)):
        root.location = (x, 0.0, 0.0)
        root.keyframe_insert("location", frame=frame)
    prose = bpy.context.scene.prose
    contact = prose.contacts.add()
    contact.source, contact.part_a, contact.person_a, contact.part_b, contact.person_b = "ARTIST", "right_hand", 1, "left_hand", 2
    contact.use_interval = True
    contact.interval_start, contact.interval_end = INTERVAL
    contact.ease_in = contact.ease_out = EASE
    prose.frame_mode, prose.frame_start, prose.frame_end = "RANGE", FRAMES[0], FRAMES[-1]
    prose.ease_frames = 0
    prose.iterations = 300
    return prose, contact


def _hands(frame: int) -> tuple[np.ndarray, float]:
    """Both bodies' evaluated vertices at ``frame`` and the hands' distance (Blender's meshes)."""
    from prosepose.prose_blender.bodies import mesh_regions

    bpy.context.scene.frame_set(frame)
    meshes = [bpy.data.objects[f"{name}_body"] for name in ("P1", "P2")]
    points = [evaluated_world_vertices(mesh) for mesh in meshes]
    a = points[0][mesh_regions(meshes[0].data)["right_hand"]]
    b = points[1][mesh_regions(meshes[1].data)["left_hand"]]
    gap = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).min()
    return np.concatenate(points), float(gap)


def test_refine_range_solves_the_clip_with_its_interval(enabled_addon, tmp_path):
    prose, contact = _clip()
    scene = bpy.context.scene
    # The interval is on the timeline.
    markers = {m.name: m.frame for m in scene.timeline_markers if m.name.startswith("ProsePose: ")}
    assert sorted(markers.values()) == [4, 6] and all("right_hand" in name for name in markers)
    contact.interval_end = 7
    assert sorted(m.frame for m in scene.timeline_markers if m.name.startswith("ProsePose: ")) == [4, 7]
    contact.interval_end = INTERVAL[1]

    p1 = bpy.data.objects["P1"]
    original_action = p1.animation_data.action
    original_digest = action_digest(original_action)
    before = {frame: _hands(frame) for frame in FRAMES}
    assert all(gap > 0.1 for _, gap in before.values())

    assert bpy.ops.prosepose.refine() == {"FINISHED"}, prose.result_summary
    # One job for the whole range, a sequence solve with the contact's interval.
    jobs = sorted((tmp_path / "cache").glob("*-job.json"), key=lambda p: p.stat().st_mtime_ns)
    job = json.loads(jobs[-1].read_text())
    assert [f["frame"] for f in job["frames"]] == list(FRAMES)
    assert job["options"]["solve"] == "sequence"
    assert job["constraints"]["explicit"][0]["interval"] == {"start": 4, "end": 6, "ease_in": 2, "ease_out": 2}

    after = {frame: _hands(frame) for frame in FRAMES}
    # Per-frame contact inside the interval, measured on Blender's meshes.
    for frame in range(INTERVAL[0], INTERVAL[1] + 1):
        assert after[frame][1] < 0.015, (frame, after[frame][1])
    # Untouched outside the interval and its eases (frames 1-2 and 8-9).
    for frame in (1, 2, 8, 9):
        assert np.abs(after[frame][0] - before[frame][0]).max() < 1e-5, frame
    # The ease: frame 3 is part-way, between the original and the interval's correction.
    moved = {frame: float(np.abs(after[frame][0] - before[frame][0]).max()) for frame in FRAMES}
    assert 0.0005 < moved[3] < moved[4]
    assert 0.0005 < moved[7] < moved[6]
    assert before[3][1] > after[3][1] > after[4][1]
    # The original action is bit-identical (the add-on may move it onto a track of its own
    # below the refinement); the refinement is its own NLA track.
    assert original_action.name in bpy.data.actions and bpy.data.actions[original_action.name] == original_action
    assert action_digest(original_action) == original_digest
    assert any(t.name == "ProsePose refinement" for t in p1.animation_data.nla_tracks)
    # The influence slider shows the original at 0.
    prose.refinement_influence = 0.0
    assert np.abs(_hands(5)[0] - before[5][0]).max() < 1e-5
    prose.refinement_influence = 1.0
