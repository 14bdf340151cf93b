"""Find contacts through the real engine subprocess and the real openai client against the
loopback OpenAI-compatible test server; an unreachable endpoint fails cleanly."""

from __future__ import annotations

import json

import bpy
import pytest
from PIL import Image

from conftest import REPO_ROOT
from support import small_rig
from support.blender_helpers import enabled_addon, scene_digest  # noqa: F401
from support.fake_openai_server import FakeOpenAIServer

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
    # The engine may swap Person 1 and Person 2 in a row (the loss takes both orders).
    rows = {(c.source, frozenset((c.part_a, c.part_b))): c.count for c in prose.contacts}
    assert {c.person_a + c.person_b for c in prose.contacts} == {3}
    assert rows[("ARTIST", frozenset(("upper", "lower")))] == 0
    assert rows[("LMM", frozenset(("hand", "back")))] == 2 and rows[("LMM", frozenset(("chest",)))] == 2
    assert rows[("LMM", frozenset(("hand", "shoulder (front)")))] == 1
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
