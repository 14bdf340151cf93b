"""The refinement benchmark's case helpers (benchmarks/refine_benchmark.py): seed-pose turns,
the feet a ground truth stands on, the floor regions it optimizes on full vertex sets, and
the stored cases (their key and their files), and the naive loss it times the engine against.
Fast: the synthetic body, no optimization."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT
from support.synthetic_body import SyntheticBody


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("refine_benchmark", REPO_ROOT / "benchmarks" / "refine_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    # Registered while it runs: its dataclasses look their module up by name.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.fixture(scope="module")
def body():
    return SyntheticBody()


def one_case(bench, name: str):
    return next(case for case in bench.CASES if case.name == name)


def test_turns_are_in_the_persons_own_frame(bench, body):
    # A person turned to face +Y (yaw 180): turning the left shoulder 90 degrees about "up"
    # swings the left arm (along the person's left, +x in their frame) to the person's back
    # (+y in their frame), which is world -Y for this person.
    case = bench.Case("turned", 1, ((0.0, 0.0, 180.0),), (), (), (), seed_turns=((0, "left_shoulder", (0.0, 0.0, 90.0)),))
    start = bench.placement_state(body, case)
    turned = bench.turn_joints(body, start, case)
    shoulder, elbow = body.joint_names.index("left_shoulder"), body.joint_names.index("left_elbow")
    with torch.no_grad():
        before = body.forward(start.local_rotations, start.root_translation, start.shape).joints[0]
        after = body.forward(turned.local_rotations, turned.root_translation, turned.shape).joints[0]
    arm = float(torch.linalg.norm(before[elbow] - before[shoulder]))
    torch.testing.assert_close(after[shoulder], before[shoulder])
    torch.testing.assert_close(after[elbow] - after[shoulder], torch.tensor([0.0, -arm, 0.0]), atol=1e-5, rtol=0)
    # Only that joint's local rotation changed.
    changed = (turned.local_rotations - start.local_rotations).abs().amax(dim=(-1, -2))[0] > 1e-6
    assert changed.nonzero()[:, 0].tolist() == [shoulder]


def test_seed_lowers_the_root(bench, body):
    case = bench.Case("crouch", 1, ((0.0, 0.0, 0.0),), (), (), (), seed_root_lowering=0.3)
    seed = bench.seed_state(body, case)
    placed = bench.placement_state(body, case)
    torch.testing.assert_close(seed.root_translation, placed.root_translation - torch.tensor([0.0, 0.0, 0.3]))


def test_ground_truth_stands_on_the_feet_its_contacts_leave_free(bench):
    assert bench.standing_feet(one_case(bench, "foot on thigh")) == ((0, "left_foot"),)
    assert bench.standing_feet(one_case(bench, "hands on ground")) == ()
    assert len(bench.standing_feet(one_case(bench, "hug"))) == 4
    objective = bench.ground_truth_objective(one_case(bench, "foot on thigh"))
    labels = [term.label for term in objective.terms]
    assert len(labels) == 2 and labels[1] == "left_foot on the floor"


def test_floor_regions_are_optimized_on_their_full_vertex_sets(bench):
    class Regions:
        def vertex_ids(self, region):
            return np.arange(100)

        def subsample(self, region):
            return np.arange(10)

    regions = bench.GroundTruthRegions(Regions(), one_case(bench, "hands on ground"))
    assert len(regions.subsample("left_hand")) == 100 and len(regions.subsample("right_foot")) == 100
    regions = bench.GroundTruthRegions(Regions(), one_case(bench, "hand on head"))
    assert len(regions.subsample("right_hand")) == 10


def test_case_key_follows_what_a_case_is_built_from(bench, body, monkeypatch):
    case = one_case(bench, "hug")
    key = bench.case_key(body, case, 0)
    assert key == bench.case_key(body, case, 0)
    assert key != bench.case_key(body, case, 1)
    assert key != bench.case_key(body, replace(case, placement=((0.0, 0.0, 0.0), (0.0, -0.5, 180.0))), 0)
    assert key != bench.case_key(body, replace(case, seed_root_lowering=0.1), 0)
    monkeypatch.setattr(bench, "GT_REPAIR", replace(bench.GT_REPAIR, max_iterations=(201, 100)))
    assert key != bench.case_key(body, case, 0)
    monkeypatch.undo()
    monkeypatch.setattr(bench, "CASE_VERSION", bench.CASE_VERSION + 1)
    assert key != bench.case_key(body, case, 0)
    monkeypatch.undo()
    # Another mesh is another body; the float data's last bits (identity_hash, which differs
    # between processors for a body built on first use) are not part of the key.
    monkeypatch.setattr(type(body), "faces", property(lambda self: np.array([[0, 1, 2]])))
    assert key != bench.case_key(body, case, 0)
    monkeypatch.undo()
    monkeypatch.setattr(type(body), "identity_hash", "the same body, rounded otherwise")
    assert key == bench.case_key(body, case, 0)


def test_ground_truth_settings_are_the_benchmarks_own(bench):
    # Pinned here, not derived from the engine's defaults: every iteration runs, shape is held.
    for config in (bench.GT_REACH, bench.GT_REPAIR):
        assert config.early_stop_slope == float("inf")
        assert config.optimize_shape == (False, False)
        assert config.penetration_refresh == (1, 1)
    assert bench.GT_REACH.weights.penetration == (0.0, 0.0)
    assert min(bench.GT_REPAIR.weights.penetration) > 0.0


def test_stored_case_round_trips_and_bad_files_are_rebuilt(bench, tmp_path):
    num_joints = 5
    ground_truth = bench.PeopleState(torch.randn(2, num_joints, 3, 3), torch.randn(2, 3), torch.rand(2, 4))
    initial = bench.PeopleState(torch.randn(2, num_joints, 3, 3), torch.randn(2, 3), torch.rand(2, 4))
    case = one_case(bench, "hug")
    path = tmp_path / "sub" / "case.pt"
    bench.save_case(path, bench.CaseStates(ground_truth, initial))
    assert [p.name for p in path.parent.iterdir()] == ["case.pt"]  # no temporary file left
    loaded = bench.load_case(path, case, num_joints)
    assert torch.equal(loaded.ground_truth.local_rotations, ground_truth.local_rotations)
    assert torch.equal(loaded.initial.root_translation, initial.root_translation)
    assert torch.equal(loaded.initial.shape, initial.shape)
    assert bench.load_case(path, case, num_joints + 1) is None  # another body's joints
    assert bench.load_case(path, one_case(bench, "hand on head"), num_joints) is None  # another person count
    assert bench.load_case(tmp_path / "absent.pt", case, num_joints) is None
    path.write_bytes(b"not a torch file")
    assert bench.load_case(path, case, num_joints) is None


def test_extra_noise_draws_use_their_own_seeds_and_the_same_opening_rule(bench, monkeypatch):
    seeds = []

    def perturb(state, optimizable, noise_scale, seed):
        seeds.append(seed)
        return state

    opened = iter([0.001, 0.05] * 3)  # each draw: the first attempt leaves the contact shut
    monkeypatch.setattr(bench, "perturb", perturb)
    monkeypatch.setattr(bench, "limb_noise_scale", lambda body, case: None)
    monkeypatch.setattr(bench, "evaluate_state", lambda *args: (bench.Evaluation(next(opened), None), None))
    monkeypatch.setattr(bench, "penetration_after", lambda *args: 0.0)

    class Statics:
        body = None
        optimizable = torch.ones(3, dtype=torch.bool)

    gt = bench.PeopleState(torch.eye(3).repeat(1, 3, 1, 1), torch.zeros(1, 3), torch.zeros(1, 2))
    for draw in range(3):
        states = bench.noise_draw(Statics(), None, one_case(bench, "hug"), gt, seed=4, draw=draw)
        assert states.ground_truth is gt
    # Draw 0 is the case's own initial pose (seeds 1000 * seed + attempt); later draws never
    # reuse one of its seeds.
    assert seeds == [4000, 4001, 4100, 4101, 4200, 4201]
    assert bench.MAX_NOISE_DRAWS < 100


def test_naive_loss_is_the_engines_contact_loss(bench, body):
    """The naive implementation the benchmark times against the engine computes the same
    loss (saturated LMM rows included): drawing each region's fixed subsample, it gives the
    engine's contact value; its own draws are fresh, per member as many as that subsample."""
    import random

    from engine.refine.losses.contact import contact_value
    from engine.refine.optimizer import PeopleState
    from engine.refine.problem import BodyStatics, PersonOptions, build_problem

    case = one_case(bench, "hug")
    objective = bench.objective_from_samples(bench.lmm_samples(case, random.Random(1)), case.num_people)
    assert any(term.source == "lmm" for term in objective.terms)
    rotations = torch.eye(3).repeat(2, len(body.joint_names), 1, 1)
    state = PeopleState(rotations, torch.tensor([[0.0, 0.0, 0.0], [-0.5, -0.3, 0.0]]), torch.zeros(2, 2))
    problem = build_problem(BodyStatics(body, body.default_shape()), body.regions, objective, state, [PersonOptions()] * 2)
    everything = body.forward(state.local_rotations, state.root_translation, state.shape).vertices  # (2, V, 3)
    engine_value = contact_value(problem.setup.contact, everything[:, problem.vertex_ids], bench.FLOOR)
    naive_value = bench.naive_contact(objective, lambda region: body.regions.subsample(region).tolist(), everything, bench.FLOOR)
    # Far apart, so that the saturation (rho(d) < d) shows in the value.
    assert float(engine_value) > 0.05
    assert float(naive_value) == pytest.approx(float(engine_value), rel=1e-5)
    unsaturated = replace(objective, terms=tuple(replace(t, source="artist") for t in objective.terms))
    assert float(bench.naive_contact(unsaturated, lambda r: body.regions.subsample(r).tolist(), everything, bench.FLOOR)) > 1.01 * float(engine_value)

    draw = bench.naive_draw(body.regions, random.Random(0))
    first, second = draw("waist"), draw("waist")
    for ids in (first, second):
        assert len(set(ids)) == len(ids)  # no vertex twice
        assert set(ids) <= set(body.regions.vertex_ids("waist").tolist())
        assert len(ids) == sum(len(body.regions.subsample(m)) for m in ("waist_front", "waist_back"))
    assert first != second  # drawn afresh at every call
