"""Find contacts through the real engine subprocess and the real openai client against the
loopback OpenAI-compatible test server; an unreachable endpoint fails cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import bpy
import pytest
from PIL import Image

from conftest import REPO_ROOT
from support import small_rig
from support.blender_helpers import enabled_addon, scene_digest  # noqa: F401
from support.fake_openai_server import FakeOpenAIServer
from support.layout_recorder import draw_panel

ENGINE_PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")
KEY = "sk-loopback-planted-91b2"
HUG = "| Person 1 part | Person 2 part |\n|---|---|\n| hand | back |\n| chest | chest |\n"
SHOULDER = "| Person 1 part | Person 2 part |\n|---|---|\n| hand | shoulder (front) |\n"


def _scene(tmp_path):
    for index in (1, 2):
        rig = tmp_path / f"rig{index}.npz"
        small_rig.make_rig(rig)
        assert bpy.ops.prosepose.add_body(rig_file=str(rig), name=f"P{index}") == {"FINISHED"}
    image = tmp_path / "reference.png"
    Image.new("RGB", (320, 200), (180, 150, 120)).save(image)
    prose = bpy.context.scene.prose
    prose.reference_image = str(image)
    artist = prose.contacts.add()
    artist.source, artist.part_a, artist.person_a, artist.part_b, artist.person_b = "ARTIST", "upper", 1, "lower", 2
    prefs = bpy.context.preferences.addons["prosepose"].preferences
    prefs.engine_python = ENGINE_PYTHON
    prefs.lmm_api_key = KEY
    prefs.lmm_samples = 4
    prefs.lmm_model = "test-vision-model"
    return prefs


def test_find_contacts_fills_the_list_and_keeps_artist_contacts(enabled_addon, tmp_path):
    prefs = _scene(tmp_path)
    with FakeOpenAIServer(texts=[HUG, HUG, SHOULDER, ""]) as server:
        prefs.lmm_base_url = server.base_url
        assert bpy.ops.prosepose.find_contacts() == {"FINISHED"}
        authorizations = [r.headers.get("authorization", "") for r in server.received]
    assert authorizations and all(a == f"Bearer {KEY}" for a in authorizations)
    prose = bpy.context.scene.prose
    # Each row keeps Person 1's part on Person 1, as answered.
    rows = {(c.source, c.person_a, c.part_a, c.person_b, c.part_b): c.count for c in prose.contacts}
    assert rows == {
        ("ARTIST", 1, "upper", 2, "lower"): 0,
        ("LMM", 1, "hand", 2, "back"): 2,
        ("LMM", 1, "chest", 2, "chest"): 2,
        ("LMM", 1, "hand", 2, "shoulder (front)"): 1,
    }
    assert prose.lmm_sample_count == 4 and prose.lmm_empty_count == 1
    assert len(json.loads(prose.lmm_samples_json)) == 4
    assert all(c.key for c in prose.contacts if c.source == "LMM")
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_unreachable_endpoint_reports_and_changes_nothing(enabled_addon, tmp_path):
    prefs = _scene(tmp_path)
    prefs.lmm_base_url = "http://127.0.0.1:9/v1"
    prefs.lmm_retries = 0
    before = scene_digest()
    contacts_before = [(c.part_a, c.part_b) for c in bpy.context.scene.prose.contacts]
    with pytest.raises(RuntimeError, match="127.0.0.1:9.*Nothing in the scene was changed"):
        bpy.ops.prosepose.find_contacts()
    assert scene_digest() == before
    assert [(c.part_a, c.part_b) for c in bpy.context.scene.prose.contacts] == contacts_before


# Regions named like the engine's (the small rig's tube cut into bands of 12-vertex rings).
NAMED_REGIONS = {"right_hand": range(0, 24), "left_hand": range(24, 48), "back": range(72, 96), "left_shoulder_front": range(120, 156)}
RIGHT_HAND_ON_SHOULDER = "| Person 1 part | Person 2 part |\n|---|---|\n| right hand | left shoulder (front) |\n"
SHOULDER_UNDER_HAND = "| Person 1 part | Person 2 part |\n|---|---|\n| left shoulder (front) | right hand |\n"


def _named_region_rig(path):
    import numpy as np

    data = small_rig.make_rig(path)
    names = list(NAMED_REGIONS)
    data["region_names"] = np.array(names)
    data["region_offsets"] = np.cumsum([0] + [len(NAMED_REGIONS[n]) for n in names]).astype(np.int32)
    data["region_vertex_ids"] = np.concatenate([np.asarray(NAMED_REGIONS[n]) for n in names]).astype(np.int32)
    np.savez(path, **data)


def _coloured(name: str) -> set[int]:
    import numpy as np

    mesh = bpy.data.objects[f"{name}_body"].data
    colours = np.zeros(len(mesh.vertices) * 4, dtype=np.float32)
    mesh.color_attributes["prosepose_regions"].data.foreach_get("color", colours)
    return set(np.flatnonzero(np.ptp(colours.reshape(-1, 4)[:, :3], axis=1) > 0.1).tolist())


def test_list_rows_and_show_regions_keep_person_1s_part_on_person_1(enabled_addon, tmp_path):
    for index in (1, 2):
        rig = tmp_path / f"rig{index}.npz"
        _named_region_rig(rig)
        assert bpy.ops.prosepose.add_body(rig_file=str(rig), name=f"P{index}") == {"FINISHED"}
    image = tmp_path / "reference.png"
    Image.new("RGB", (320, 200), (180, 150, 120)).save(image)
    prose = bpy.context.scene.prose
    prose.reference_image = str(image)
    prefs = bpy.context.preferences.addons["prosepose"].preferences
    prefs.engine_python, prefs.lmm_api_key, prefs.lmm_samples, prefs.lmm_model = ENGINE_PYTHON, KEY, 4, "test-vision-model"
    # Person 1's right hand on Person 2's left shoulder; one answer wrote it the other way round.
    with FakeOpenAIServer(texts=[RIGHT_HAND_ON_SHOULDER, SHOULDER_UNDER_HAND, RIGHT_HAND_ON_SHOULDER, ""]) as server:
        prefs.lmm_base_url = server.base_url
        assert bpy.ops.prosepose.find_contacts() == {"FINISHED"}
    [contact] = list(prose.contacts)
    assert (contact.person_a, contact.part_a, contact.person_b, contact.part_b, contact.count) == (
        1, "right hand", 2, "left shoulder (front)", 3,
    )
    recorder = draw_panel(bpy.types.PROSEPOSE_PT_contacts)
    assert not recorder.errors
    assert ("label", "P1 right hand - P2 left shoulder (front)") in recorder.calls
    # Show regions colours exactly Person 1's right hand and Person 2's left front shoulder.
    assert bpy.ops.prosepose.show_regions() == {"FINISHED"}
    assert _coloured("P1") == set(NAMED_REGIONS["right_hand"])
    assert _coloured("P2") == set(NAMED_REGIONS["left_shoulder_front"])
    assert bpy.ops.prosepose.hide_regions() == {"FINISHED"}


def test_back_off_setting_reaches_the_engine(enabled_addon, tmp_path):
    prefs = _scene(tmp_path)
    prose = bpy.context.scene.prose
    cache = Path(prefs.cache_folder)
    # 3 of 4 answers empty: by default (half) the engine backs off; "Never" keeps the contact.
    for mode, backed_off, recorded in (("HALF", True, 2), ("NEVER", False, 0), ("COUNT", False, 4)):
        prose.backoff_mode, prose.backoff_count = mode, 4
        for old in cache.glob("contacts*.json"):
            old.unlink()
        with FakeOpenAIServer(texts=[HUG, "", "", ""]) as server:
            prefs.lmm_base_url = server.base_url
            prefs.lmm_samples = 4
            assert bpy.ops.prosepose.find_contacts() == {"FINISHED"}
        [written] = [json.loads(p.read_text()) for p in cache.glob("contacts*.json")]
        assert (written["empty_backoff"], written["backed_off"]) == (recorded, backed_off), mode
        assert prose.lmm_empty_count == 3


def test_replay_answers_fill_the_list_without_asking_the_endpoint(enabled_addon, tmp_path):
    from engine.lmm.replay import write_replay

    prefs = _scene(tmp_path)
    prefs.lmm_replay_file = str(tmp_path / "missing.json")
    before = scene_digest()
    with pytest.raises(RuntimeError, match="replay answers file .*missing.json does not exist"):
        bpy.ops.prosepose.find_contacts()
    assert scene_digest() == before
    write_replay(tmp_path / "answers.json", [SHOULDER, SHOULDER, HUG, "I cannot tell."], 2, "answers written for a test")
    prefs.lmm_replay_file = str(tmp_path / "answers.json")
    with FakeOpenAIServer(texts=[HUG]) as server:
        prefs.lmm_base_url = server.base_url
        assert bpy.ops.prosepose.find_contacts() == {"FINISHED"}
        assert server.received == []  # the replay asked nobody
    prose = bpy.context.scene.prose
    rows = {(c.source, c.part_a, c.part_b): c.count for c in prose.contacts}
    assert rows[("LMM", "hand", "shoulder (front)")] == 2 and rows[("LMM", "hand", "back")] == 1
    assert prose.lmm_sample_count == 4 and prose.lmm_empty_count == 1
