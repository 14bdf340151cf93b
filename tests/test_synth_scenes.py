"""The held-out scene generator (engine.synth): seed sets, the type table, the answers through
the real parser, determinism and the cache, the initial pose's contact opening, and a small
restoration check: a few tuning scenes refined with the engine's defaults, every ground-truth
contact within 1 cm (the full benchmark: benchmarks/heldout_benchmark.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.body.regions import GROUND, MESH_REGIONS
from engine.lmm.parser import parse_response
from engine.refine.metrics import max_penetration_depth, vertex_normals
from engine.synth import CONTACT_TYPES, REPORT_SEEDS, TUNING_SEEDS, contact_type_of
from engine.synth.answers import NUM_ANSWERS, answer_texts, names_contact
from engine.synth.poses import ANNY_CHAINS, contact_distances, max_penetration, penetration_depth, posed_vertices
from engine.synth.scene import (
    MAX_GT_CONTACT_M,
    MAX_GT_PENETRATION_M,
    OPENING_RANGE_M,
    SynthContext,
    _rng,
    _side_recipe,
    generate_scene,
    load_scene,
    save_scene,
    scene_job,
)

REQUIRED_TYPES = (
    "hand on shoulder (front)", "hand on shoulder (back)", "hand on back", "hand on head (self)", "handshake",
    "holding hands", "hands clasped (self)", "arm around waist", "arm around shoulders", "hug",
    "hand on knee (self)", "foot on thigh (self)", "hands on the ground", "head on shoulder",
)
# Cheap scenes for the slow tests: a one-person and two two-person tuning seeds.
BUILT_SEEDS = (3, 1, 4)  # hand on head, hand on shoulder (back), handshake


@pytest.fixture(scope="module")
def context():
    return SynthContext.shared()


@pytest.fixture(scope="module")
def scenes(context, tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    return {seed: generate_scene(seed, context=context, folder=folder) for seed in BUILT_SEEDS}, folder


def test_seed_sets_are_disjoint_and_cover_every_type():
    assert not set(TUNING_SEEDS) & set(REPORT_SEEDS)
    assert len(REPORT_SEEDS) >= 60
    for seeds in (TUNING_SEEDS, REPORT_SEEDS):
        counts = {kind.name: 0 for kind in CONTACT_TYPES}
        for seed in seeds:
            counts[contact_type_of(seed).name] += 1
        assert min(counts.values()) >= 3, counts


def test_type_table(context):
    names = [kind.name for kind in CONTACT_TYPES]
    assert len(names) >= 12 and len(set(names)) == len(names)
    assert set(REQUIRED_TYPES) <= set(names)
    joints = set(context.body.joint_names)
    for kind in CONTACT_TYPES:
        assert kind.num_people in (1, 2)
        assert len(kind.placement) == kind.num_people
        for side in ("right", "left"):
            placement, contacts, turns, chains, _ = _side_recipe(kind, side, np.random.default_rng(0))
            for a, ra, b, rb in contacts:
                assert ra in MESH_REGIONS and (rb in MESH_REGIONS or rb == GROUND), kind.name
                assert max(a, b) < kind.num_people
            assert all(joint in joints and person < kind.num_people for person, joint, _ in turns), kind.name
            assert all(chain in ANNY_CHAINS for _, chain in chains) and chains, kind.name
        assert kind.answers and kind.wrong and kind.reasoning


@pytest.mark.parametrize("kind", CONTACT_TYPES, ids=lambda kind: kind.slug)
def test_answers_parse_and_most_name_the_true_contact(kind):
    for seed in range(3):
        _, contacts, _, _, _ = _side_recipe(kind, "left" if seed % 2 else "right", np.random.default_rng(seed))
        texts = answer_texts(kind, contacts, _rng(seed, 0, 2))
        assert len(texts) == NUM_ANSWERS
        samples = [parse_response(text, kind.num_people) for text in texts]
        assert sum(s.empty for s in samples) <= 5
        assert sum(names_contact(s, contacts) for s in samples) >= 12, texts


def test_generator_is_deterministic_and_cached(context, scenes, tmp_path):
    built, folder = scenes
    seed = BUILT_SEEDS[0]
    again = generate_scene(seed, context=context, cache=False)
    first = built[seed]
    assert again.answers == first.answers and again.contacts == first.contacts and again.side == first.side
    for name in ("local_rotations", "root_translation", "shape"):
        assert torch.equal(getattr(again.ground_truth, name), getattr(first.ground_truth, name))
        assert torch.equal(getattr(again.initial, name), getattr(first.initial, name))
    assert generate_scene(seed, context=context, folder=folder).info["source"] == "cache"
    save_scene(tmp_path / "scene.pt", first)
    loaded = load_scene(tmp_path / "scene.pt")
    assert loaded is not None and loaded.answers == first.answers
    assert torch.equal(loaded.initial.local_rotations, first.initial.local_rotations)


def test_ground_truth_holds_and_initial_pose_is_open(context, scenes):
    built, _ = scenes
    for seed, scene in built.items():
        gt_vertices, _ = posed_vertices(context.body, scene.ground_truth)
        assert max(contact_distances(context.regions, scene.contacts, gt_vertices)) <= MAX_GT_CONTACT_M
        assert penetration_depth(context.body, context.regions, scene.contacts, gt_vertices) <= MAX_GT_PENETRATION_M
        vertices, _ = posed_vertices(context.body, scene.initial)
        opening = max(contact_distances(context.regions, scene.contacts, vertices))
        assert OPENING_RANGE_M[0] <= opening <= OPENING_RANGE_M[1], (seed, opening)
        assert penetration_depth(context.body, context.regions, scene.contacts, vertices) <= 0.005


def test_fast_penetration_equals_the_metric(context):
    # Two bodies pushed into each other: the voxel-filtered measure gives the metric's value.
    body = context.body
    state = torch.eye(3).repeat(2, len(body.joint_names), 1, 1)
    shapes = body.default_shape().repeat(2, 1)
    translation = torch.tensor([[0.0, 0.0, 0.9], [0.05, -0.15, 0.9]])
    with torch.no_grad():
        vertices = body.forward(state, translation, shapes).vertices.numpy()
    sample = np.arange(0, body.num_vertices, 3)
    a, b = vertices[0][sample], vertices[1]
    normals = vertex_normals(b, np.asarray(body.faces))
    expected = max_penetration_depth(a, b, normals)
    assert expected > 0.005
    assert max_penetration(a, b, normals) == pytest.approx(expected, abs=1e-12)


def test_engine_defaults_restore_generated_scenes(context, scenes):
    """A handful of tuning scenes, refined as `python -m engine refine` would with the
    engine's defaults: every ground-truth contact within 1 cm."""
    from engine.refine.run import people_state, run_job

    built, _ = scenes
    torch.set_num_threads(1)
    failures = []
    for seed, scene in built.items():
        samples = [parse_response(text, scene.num_people) for text in scene.answers]
        job = scene_job(scene, context.body.joint_names, samples)
        result = run_job(job, context.body, context.regions)
        final = people_state(context.body, result.frames[0].people, "result")
        vertices, _ = posed_vertices(context.body, final)
        worst = max(contact_distances(context.regions, scene.contacts, vertices))
        if worst > 0.01:
            failures.append(f"seed {seed} ({scene.contact_type}): {100 * worst:.1f} cm")
    assert not failures, failures
