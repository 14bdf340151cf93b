"""The job the add-on writes from a scene is one the engine reads (engine/refine/job.py and
schemas/job.schema.json), carries the pose at the requested frame and the artist's choices."""

from __future__ import annotations

import json

import bpy
import jsonschema
import numpy as np

from conftest import REPO_ROOT
from support import small_rig
from support.blender_helpers import enabled_addon  # noqa: F401


def test_job_from_scene_is_valid_and_carries_poses_and_contacts(enabled_addon, tmp_path):
    from engine.refine.job import Job
    from prosepose.operators.refine import refine_request
    from prosepose.prose_blender.preferences import engine_settings
    from prosepose.prose_blender.refine import build_job

    for index in (1, 2):
        rig = tmp_path / f"rig{index}.npz"
        small_rig.make_rig(rig)
        assert bpy.ops.prosepose.add_body(rig_file=str(rig), name=f"P{index}") == {"FINISHED"}
    scene = bpy.context.scene
    bpy.data.objects["P2"].location = (0.6, 0.0, 0.0)
    bone = bpy.data.objects["P1"].pose.bones["arm"]
    for frame, angle in ((1, 0.0), (9, 0.8)):
        bone.rotation_quaternion = (np.cos(angle / 2), np.sin(angle / 2), 0, 0)
        bone.keyframe_insert("rotation_quaternion", frame=frame)
    scene.frame_set(9)
    prose = scene.prose
    prose.move_person_2 = False
    prose.stay_close_strength = 2.0
    prose.contact_strength = 0.5
    for source, a, b, key, enabled in (("ARTIST", "right_hand", "left_shoulder", "", True), ("ARTIST", "head", "ground", "", False), ("LMM", "hand", "back", "back|hand", False)):
        contact = prose.contacts.add()
        contact.source, contact.part_a, contact.part_b, contact.key, contact.enabled = source, a, b, key, enabled
        contact.person_a, contact.person_b = 1, 2
    job = build_job(scene, refine_request(scene), engine_settings())
    assert scene.frame_current == 9
    schema = json.loads((REPO_ROOT / "schemas" / "job.schema.json").read_text())
    jsonschema.validate(job, schema)
    parsed = Job.from_dict(job)
    assert [p.movable for p in parsed.people] == [True, False]
    assert parsed.frames[0].frame == 9
    arm = parsed.frames[0].people[0].rotations["arm"]
    assert np.allclose(arm, (np.cos(0.4), np.sin(0.4), 0, 0), atol=1e-6)
    assert np.allclose(parsed.frames[0].people[1].root_translation, (0.6, 0, 0), atol=1e-6)
    assert [(c.person_a, c.region_a, c.person_b, c.region_b, c.weight) for c in parsed.constraints.explicit] == [(0, "right_hand", 1, "left_shoulder", 0.5)]
    assert parsed.constraints.disabled == ("back|hand",)
    assert parsed.people[0].joint_weights["arm"] == 2.0


def test_job_carries_the_floor_and_back_off_settings(enabled_addon, tmp_path):
    from engine.refine.job import Job
    from prosepose.operators.refine import refine_request
    from prosepose.prose_blender.preferences import engine_settings
    from prosepose.prose_blender.refine import build_job

    small_rig.make_rig(tmp_path / "rig.npz")
    assert bpy.ops.prosepose.add_body(rig_file=str(tmp_path / "rig.npz"), name="P1") == {"FINISHED"}
    scene = bpy.context.scene
    prose = scene.prose
    contact = prose.contacts.add()
    contact.source, contact.part_a, contact.person_a, contact.part_b, contact.person_b = "LMM", "hand", 1, "head", 1
    contact.key = "hand|head"
    schema = json.loads((REPO_ROOT / "schemas" / "job.schema.json").read_text())

    def job() -> dict:
        data = build_job(scene, refine_request(scene), engine_settings())
        jsonschema.validate(data, schema)
        Job.from_dict(data)
        return data

    # Defaults: the scene's floor (z = 0, where Add body stands the bodies), back-off at half
    # of the answers (left to the engine).
    assert (prose.floor_mode, prose.backoff_mode) == ("HEIGHT", "HALF")
    default = job()
    assert default["options"]["floor_height"] == 0.0 and default["constraints"]["empty_backoff"] is None
    prose.floor_mode = "AUTO"
    assert job()["options"]["floor_height"] is None
    prose.floor_mode, prose.floor_height = "HEIGHT", 0.25
    prose.backoff_mode = "NEVER"
    chosen = job()
    assert chosen["options"]["floor_height"] == 0.25 and chosen["constraints"]["empty_backoff"] == 0
    prose.backoff_mode, prose.backoff_count = "COUNT", 7
    assert job()["constraints"]["empty_backoff"] == 7
