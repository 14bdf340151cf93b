"""The batch manifest (engine.batch.manifest): items are versioned and strict, every error
names the manifest, the line and the field, and an item's key follows the content of the
files it names, not their names. No Ray here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.batch.manifest import ManifestError, read_ground_truth, read_manifest


def manifest(folder, *lines) -> object:
    path = folder / "manifest.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "a.json").write_text('{"job": 1}', encoding="utf-8")
    (tmp_path / "b.json").write_text('{"job": 2}', encoding="utf-8")
    (tmp_path / "frame.png").write_bytes(b"\x89PNG not really")
    return tmp_path


def test_items_paths_ids_comments_and_blank_lines(folder):
    items = read_manifest(manifest(
        folder,
        "# a comment",
        {"job": "a.json"},
        "",
        {"schema_version": 1, "id": "take-3.f120", "job": "b.json", "image": "frame.png", "boxes": ["0,0,10,10"]},
    ))
    assert [(i.id, i.line) for i in items] == [("00002-a", 2), ("take-3.f120", 4)]
    assert items[0].job == folder / "a.json" and items[0].image is None
    assert items[1].image == folder / "frame.png" and items[1].boxes == ("0,0,10,10",)


@pytest.mark.parametrize(
    "line, message",
    [
        ({"job": "a.json", "jobs": 1}, "line 1: unknown key(s) 'jobs'"),
        ({"image": "frame.png"}, "line 1: missing key(s) 'job'"),
        ({"schema_version": 2, "job": "a.json"}, "line 1.schema_version: 2 is not supported"),
        ({"job": "missing.json"}, "line 1: field 'job': cannot read job file"),
        ({"job": ""}, "line 1: field 'job': expected a non-empty string"),
        ({"job": "a.json", "id": "../escape"}, "line 1: field 'id': '../escape' is not a usable name"),
        ({"job": "a.json", "boxes": ["1,2,3,4"]}, "field 'boxes': boxes outline people in an image"),
        ({"job": "a.json", "ground_truth": 5}, "field 'ground_truth': expected the path of a ground-truth file"),
        ({"job": "a.json", "ground_truth": "nope.json"}, "field 'ground_truth': cannot read ground-truth file"),
        ("[1, 2]", "line 1: expected a JSON object per line, got list"),
        ("{nope", "line 1: not a JSON object"),
    ],
)
def test_a_bad_line_names_the_manifest_line_and_field(folder, line, message):
    path = manifest(folder, line)
    with pytest.raises(ManifestError) as error:
        read_manifest(path)
    assert str(error.value).startswith(f"manifest {path}")
    assert message in str(error.value)


def test_duplicate_ids_and_empty_manifests_are_refused(folder):
    with pytest.raises(ManifestError, match="line 2: field 'id': 'x' is already the id of line 1"):
        read_manifest(manifest(folder, {"id": "x", "job": "a.json"}, {"id": "x", "job": "b.json"}))
    with pytest.raises(ManifestError, match="no items"):
        read_manifest(manifest(folder, "# only a comment"))
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(folder / "absent.jsonl")


def test_the_key_follows_the_content_not_the_file_name(folder):
    path = manifest(folder, {"id": "x", "job": "a.json"})
    first = read_manifest(path)[0].key
    assert read_manifest(path)[0].key == first
    (folder / "a.json").write_text('{"job": 1, "edited": true}', encoding="utf-8")
    edited = read_manifest(path)[0].key
    assert edited != first
    (folder / "a.json").write_text('{"job": 1}', encoding="utf-8")
    assert read_manifest(path)[0].key == first
    # Adding a ground truth (or changing it) makes another item: its report differs.
    with_truth = read_manifest(manifest(folder, {"id": "x", "job": "a.json", "ground_truth": {"frames": []}}))[0].key
    assert with_truth != first


def truth(**frame) -> str:
    return json.dumps({"frames": [{"frame": 1, **frame}]})


def test_ground_truth_is_read_into_arrays_and_checked():
    parsed = read_ground_truth(
        truth(joints=[[[0, 0, 1], [0, 0, 2]], [[1, 0, 1], [1, 0, 2]]],
              contacts=[{"person_a": 0, "region_a": "right_hand", "person_b": 1, "region_b": "left_shoulder"},
                        {"person_a": 1, "region_a": "left_foot", "person_b": 1, "region_b": "ground"}]),
        "ground truth t.json",
    )
    frame = parsed.frame(1)
    assert frame.joints.shape == (2, 2, 3) and frame.joints.dtype == np.float64
    assert [c.region_b for c in frame.contacts] == ["left_shoulder", "ground"]
    assert parsed.frame(2) is None


@pytest.mark.parametrize(
    "text, message",
    [
        (truth(joints=[[[0, 0]]]), "frames[0].joints: expected (people, points, 3)"),
        (truth(joints=[[[0, 0, float("nan")]]]).replace("NaN", "NaN"), "finite number"),
        (truth(joints=[[[0, 0, 1]], [[0, 0, 1], [0, 0, 2]]]), "frames[0].joints"),
        (truth(contacts=[{"person_a": 0, "region_a": "elbow", "person_b": 1, "region_b": "head"}]), "unknown region 'elbow'"),
        (truth(contacts=[{"person_a": 0, "region_a": "left_foot", "person_b": 1, "region_b": "ground"}]), "names the same person"),
        (truth(), "needs joints, vertices or contacts"),
        (truth(joints=[[[0, 0, 1]]], pose=1), "unknown key(s) 'pose'"),
        (json.dumps({"schema_version": 9, "frames": []}), "schema_version: 9 is not supported"),
        ("not json", "not a JSON file"),
    ],
)
def test_a_bad_ground_truth_says_where(text, message):
    with pytest.raises(ManifestError) as error:
        read_ground_truth(text, "ground truth t.json")
    assert str(error.value).startswith("ground truth t.json")
    assert message in str(error.value)


def test_the_schema_describes_the_same_lines(folder):
    import jsonschema

    from conftest import REPO_ROOT

    schema = json.loads((REPO_ROOT / "schemas" / "batch-manifest.schema.json").read_text(encoding="utf-8"))
    truth = {"frames": [{"frame": 1, "joints": [[[0.0, 0.0, 1.0]]],
                         "contacts": [{"person_a": 0, "region_a": "right_hand", "person_b": 0, "region_b": "ground"}]}]}
    good = [
        {"job": "a.json"},
        {"schema_version": 1, "id": "x-1", "job": "b.json", "image": "frame.png", "boxes": ["0,0,10,10"]},
        {"job": "a.json", "ground_truth": truth},
        {"job": "a.json", "ground_truth": "t.json"},
    ]
    for line in good:
        jsonschema.validate(line, schema)
    read_ground_truth(json.dumps(truth), "inline")  # and the reader takes the same ground truth
    for bad in ({"jobs": "a.json"}, {"job": "a.json", "boxes": ["0,0,1,1"]}, {"job": "a.json", "id": "-x"},
                {"job": "a.json", "ground_truth": {"frames": [{"frame": 1}]}}, {"job": "a.json", "schema_version": 2}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
