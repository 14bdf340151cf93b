"""Regions derived on both body models: complete, mirrored, on the right side of the body,
holding the fingertips and toes; the on-disk cache; the region picture command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.body import load_body
from engine.body.region_map import SUBSAMPLE_SIZE, body_regions, region_cache_path, rest_geometry
from engine.body.regions import MESH_REGIONS, REGION_BASES, composite_members, mirror_region, split_region

REPO_ROOT = Path(__file__).resolve().parent.parent

# Landmark joints of each body model (left side; the right mirrors them).
LANDMARKS = {
    "anny": {"elbow": "lowerarm01.L", "wrist": "wrist.L", "ankle": "foot.L", "hips": ("upperleg01.L", "upperleg01.R"),
             "shoulders": ("upperarm01.L", "upperarm01.R")},
    "smplx": {"elbow": "left_elbow", "wrist": "left_wrist", "ankle": "left_ankle", "hips": ("left_hip", "right_hip"),
              "shoulders": ("left_shoulder", "right_shoulder")},
}


@pytest.fixture(scope="module", params=["anny", "smplx"])
def body_and_regions(request):
    if request.param == "anny":
        body = load_body("anny")
    else:
        body = load_body("smplx", request.getfixturevalue("smplx_model_file"))
    regions = body_regions(body, use_cache=False)
    vertices, joints = rest_geometry(body)
    return body, regions, vertices, joints


def _joint(body, joints, name):
    return joints[body.joint_names.index(name)]


def _right_name(name: str) -> str:
    return name.replace(".L", ".R") if name.endswith(".L") else name.replace("left_", "right_")


def test_every_region_is_non_empty_with_a_bounded_subsample(body_and_regions):
    body, regions, _, _ = body_and_regions
    for region in MESH_REGIONS:
        ids = regions.vertex_ids(region)
        sub = regions.subsample(region)
        assert len(ids) > 0, region
        assert 0 < len(sub) <= SUBSAMPLE_SIZE * len(composite_members(region)), region
        assert np.isin(sub, ids).all(), region
        assert ids.min() >= 0 and ids.max() < body.num_vertices
    waist = set(regions.vertex_ids("waist").tolist())
    assert waist == set(regions.vertex_ids("waist_front").tolist()) | set(regions.vertex_ids("waist_back").tolist())


def test_left_and_right_regions_mirror_each_other(body_and_regions):
    _, regions, vertices, _ = body_and_regions
    for region in MESH_REGIONS:
        base, side = split_region(region)
        if side != "left":
            continue
        left, right = regions.vertex_ids(region), regions.vertex_ids(mirror_region(region))
        assert abs(len(left) - len(right)) <= 0.1 * max(len(left), len(right)), region
        mirrored = vertices[left].mean(axis=0) * np.array([-1.0, 1.0, 1.0])
        assert np.linalg.norm(mirrored - vertices[right].mean(axis=0)) < 0.02, region
        assert vertices[left, 0].mean() > 0, f"{region} is not on the body's left (+X)"


def test_front_and_back_variants_lie_on_their_side_of_the_coronal_plane(body_and_regions):
    body, regions, vertices, joints = body_and_regions
    marks = LANDMARKS[body.kind]
    # Forward is -Y in the world frame for both bodies.
    hip_plane = np.mean([_joint(body, joints, n)[1] for n in marks["hips"]])
    shoulder_plane = np.mean([_joint(body, joints, n)[1] for n in marks["shoulders"]])
    for front, back, plane in (
        ("waist_front", "waist_back", hip_plane),
        ("left_shoulder_front", "left_shoulder_back", shoulder_plane),
        ("right_shoulder_front", "right_shoulder_back", shoulder_plane),
        ("chest", "back", shoulder_plane),
    ):
        front_y = vertices[regions.vertex_ids(front), 1]
        back_y = vertices[regions.vertex_ids(back), 1]
        assert front_y.mean() < plane < back_y.mean(), (front, back)
        assert front_y.max() < back_y.max() and front_y.min() < back_y.min()
    assert vertices[regions.vertex_ids("butt"), 1].mean() > hip_plane
    assert vertices[regions.vertex_ids("stomach"), 1].mean() < hip_plane


def test_hands_hold_the_fingertips_and_feet_the_toes(body_and_regions):
    body, regions, vertices, joints = body_and_regions
    marks = LANDMARKS[body.kind]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        names = {key: (marks[key] if side == "left" else _right_name(marks[key])) for key in ("elbow", "wrist", "ankle")}
        elbow, wrist, ankle = (_joint(body, joints, names[k]) for k in ("elbow", "wrist", "ankle"))
        on_side = np.flatnonzero(vertices[:, 0] * sign > 0)
        # Fingertips: the vertices near the wrist reaching furthest along the forearm's direction.
        direction = (wrist - elbow) / np.linalg.norm(wrist - elbow)
        near_wrist = on_side[np.linalg.norm(vertices[on_side] - wrist, axis=1) < 0.3]
        reach = (vertices[near_wrist] - wrist) @ direction
        fingertips = near_wrist[np.argsort(-reach)[:20]]
        assert np.isin(fingertips, regions.vertex_ids(f"{side}_hand")).all(), side
        # Toes: the most forward (-Y) vertices below the ankle.
        below = on_side[vertices[on_side, 2] < ankle[2]]
        toes = below[np.argsort(vertices[below, 1])[:20]]
        assert np.isin(toes, regions.vertex_ids(f"{side}_foot")).all(), side


def test_regions_are_cached_and_a_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("PROSEPOSE_CACHE_DIR", str(tmp_path))
    body = load_body("anny")
    first = body_regions(body)
    path = region_cache_path(body)
    assert not first.loaded_from_cache and path.exists() and str(path).startswith(str(tmp_path))
    second = body_regions(body)
    assert second.loaded_from_cache
    for name in first.elementary:
        assert np.array_equal(first.elementary[name], second.elementary[name])
        assert np.array_equal(first.subsamples[name], second.subsamples[name])
    path.write_bytes(b"not a zip file at all")
    rebuilt = body_regions(body)
    assert not rebuilt.loaded_from_cache
    assert np.array_equal(rebuilt.vertex_ids("left_hand"), first.vertex_ids("left_hand"))
    assert body_regions(body).loaded_from_cache


def test_region_picture_command_writes_a_png(tmp_path):
    from PIL import Image

    out = tmp_path / "pictures" / "regions.png"
    env = {**os.environ, "PROSEPOSE_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, "-m", "engine", "regions", "--body", "anny", "--out", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["event"] == "done"
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > image.height > 500
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colours) > 50
