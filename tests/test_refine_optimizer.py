"""Optimizer behaviour on the small synthetic body: which parameters get gradient, pinned
joints and fixed people stay put, the NaN guard, determinism, typed weight config."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from engine.refine.losses import evaluate
from engine.contacts.objective import ContactObjective, ContactTerm, RegionPair
from engine.refine.optimizer import (
    OptimizationVariables,
    OptimizerConfig,
    PeopleState,
    StageWeights,
    default_weights,
    joint_step_scale,
    refine,
    stopped_falling,
)
from engine.refine.problem import BodyStatics, PersonOptions, build_problem
from support.synthetic_body import SyntheticBody


@pytest.fixture(scope="module")
def body():
    return SyntheticBody()


@pytest.fixture(scope="module")
def statics(body):
    return BodyStatics(body, body.default_shape())


def scene(body):
    """Person 2 stands 1.2 m to the -x side and 0.3 m in front: Person 1's right hand can
    reach Person 2's left shoulder by rotating the arm."""
    rotations = torch.eye(3).repeat(2, len(body.joint_names), 1, 1)
    translations = torch.tensor([[0.0, 0.0, 0.0], [-1.2, -0.3, 0.0]])
    return PeopleState(rotations, translations, torch.zeros(2, 2))


def hand_on_shoulder() -> ContactObjective:
    pair = RegionPair(0, "right_hand", 1, "left_shoulder")
    return ContactObjective((ContactTerm((((pair,),),), 1.0, "artist", pair.label()),))


def config(**overrides) -> OptimizerConfig:
    return OptimizerConfig(weights=default_weights(2), max_iterations=(60, 20), **overrides)


def test_gradient_reaches_exactly_the_movable_parameters(body, statics):
    people = [PersonOptions(pinned_joints=("right_elbow", "root_translation")), PersonOptions(movable=False)]
    problem = build_problem(statics, body.regions, hand_on_shoulder(), scene(body), people)
    variables = OptimizationVariables(problem, 0.25, 0.25)
    # Start off the initial pose so the stay-close term has gradient everywhere it applies.
    with torch.no_grad():
        variables.pose_offsets.add_(0.1)
        variables.translation_offsets.add_(0.1)
    loss, _ = evaluate(variables.inputs(), default_weights(2).for_stage(0))
    loss.backward()
    pose_grad = variables.pose_offsets.grad.abs().sum(-1)
    elbow = body.joint_names.index("right_elbow")
    expected = torch.ones_like(pose_grad, dtype=torch.bool)
    expected[0, elbow] = False
    expected[1] = False
    assert torch.equal(pose_grad > 0, expected)
    assert variables.translation_offsets.grad.abs().sum(-1).tolist() == [0.0, 0.0]
    shape_grad = variables.shape_offsets.grad.abs().sum(-1)
    assert shape_grad[0] > 0 and shape_grad[1] == 0


def test_pinned_joints_and_fixed_people_do_not_move(body, statics):
    initial = scene(body)
    people = [PersonOptions(pinned_joints=("right_shoulder",)), PersonOptions(movable=False)]
    problem = build_problem(statics, body.regions, hand_on_shoulder(), initial, people)
    outcome = refine(problem, config())
    state = outcome.state
    shoulder = body.joint_names.index("right_shoulder")
    assert torch.equal(state.local_rotations[0, shoulder], initial.local_rotations[0, shoulder])
    assert torch.equal(state.local_rotations[1], initial.local_rotations[1])
    assert torch.equal(state.root_translation[1], initial.root_translation[1])
    assert torch.equal(state.shape[1], initial.shape[1])
    # ... while the contact still closed with the joints that may move.
    elbow = body.joint_names.index("right_elbow")
    assert not torch.equal(state.local_rotations[0, elbow], initial.local_rotations[0, elbow])


def test_refinement_closes_the_contact_and_is_deterministic(body, statics):
    problem = build_problem(statics, body.regions, hand_on_shoulder(), scene(body), [PersonOptions()] * 2)
    first = refine(problem, config())
    second = refine(problem, config())
    assert torch.equal(first.state.local_rotations, second.state.local_rotations)
    assert first.iterations == second.iterations
    with torch.no_grad():
        before = body.forward(scene(body).local_rotations, scene(body).root_translation, scene(body).shape)
    hand = torch.as_tensor(body.regions.vertex_ids("right_hand"))
    shoulder = torch.as_tensor(body.regions.vertex_ids("left_shoulder"))
    gap_before = torch.cdist(before.vertices[0, hand], before.vertices[1, shoulder]).min()
    assert gap_before > 0.2
    assert first.losses["contact"] < 0.02 * float(gap_before)


class NaNAfter(SyntheticBody):
    """The synthetic body, but its vertices turn NaN from the n-th forward call on: a stand-in
    for a numerical blow-up, which no real body produces on demand."""

    def __init__(self, calls: int):
        super().__init__()
        self.calls_left = calls

    def forward(self, local_rotations, root_translation, shape, vertex_ids=None, *, rest_orientation_shape=None):
        output = super().forward(local_rotations, root_translation, shape, vertex_ids)
        self.calls_left -= 1
        if self.calls_left < 0:
            return dataclasses.replace(output, vertices=output.vertices * float("nan"))
        return output


def test_nan_guard_keeps_the_last_good_state(statics):
    body = NaNAfter(calls=6)
    problem = build_problem(statics, body.regions, hand_on_shoulder(), scene(body), [PersonOptions()] * 2)
    problem = dataclasses.replace(problem, body=body)
    outcome = refine(problem, config())
    assert any("non-finite" in warning for warning in outcome.warnings)
    assert outcome.iterations[0] == 6  # six good forward calls, the seventh is NaN
    assert torch.isfinite(outcome.state.local_rotations).all()
    assert torch.isfinite(outcome.state.root_translation).all()


def test_stage_weights_check_lengths_and_overrides():
    with pytest.raises(ValueError, match="one value per stage"):
        StageWeights(contact=(1.0,), stay_close=(1.0, 1.0), joint_limits=(1.0, 1.0), penetration=(1.0, 1.0),
                     shape_prior=(1.0, 1.0), keypoints_2d=(1.0, 1.0))
    weights = default_weights(2)
    assert weights.contact == (1000.0, 1000.0) and weights.stay_close == (200.0, 200.0)
    assert default_weights(1).contact == (10000.0, 10000.0)
    # Interpenetration a tenth of the contact weight, for one person as for two.
    assert default_weights(1).penetration == (1000.0, 1000.0) and weights.penetration == (100.0, 100.0)
    assert weights.with_overrides({"contact": (5.0, 6.0)}).for_stage(1)["contact"] == 6.0
    with pytest.raises(ValueError, match="unknown weight"):
        weights.with_overrides({"gmm": (1.0, 1.0)})
    with pytest.raises(ValueError, match="one per stage"):
        OptimizerConfig(weights=weights, learning_rates=(0.01,))


def test_step_scale_follows_the_stay_close_stiffness(body, statics):
    people = [PersonOptions(pinned_joints=("right_elbow",), joint_weights={"spine": 9.0}), PersonOptions(movable=False)]
    problem = build_problem(statics, body.regions, hand_on_shoulder(), scene(body), people)
    weights = problem.setup.joint_weights
    scale = joint_step_scale(problem, 0.25, stiffness_step_scaling=True)[..., 0]
    plain = joint_step_scale(problem, 0.25, stiffness_step_scaling=False)[..., 0]
    movable = problem.movable_joints
    assert torch.equal(scale == 0, ~movable) and torch.equal(plain == 0, ~movable)
    assert set(plain[movable].tolist()) == {0.25}
    # The most flexible joint keeps the full step; the others' steps shrink with the square
    # root of their weight relative to it (the artist's 9x stiffer spine: a third).
    flexible = weights[0][movable[0]].min()
    expected = 0.25 / (weights[0] / flexible).clamp(min=1.0).sqrt()
    assert torch.allclose(scale[0][movable[0]], expected[movable[0]])
    spine = body.joint_names.index("spine")
    assert float(scale[0, spine]) < float(scale[0, body.joint_names.index("right_shoulder")])
    assert float(scale[0, 0]) < 0.25 / 10  # the root's orientation is held a thousand times harder


def test_candidate_search_follows_the_motion_of_the_vertices(body, statics, monkeypatch):
    import engine.refine.optimizer as optimizer_module

    searches: list[int] = []
    real_search = optimizer_module.penetration_candidates

    def counting_search(*args):
        searches.append(1)
        return real_search(*args)

    monkeypatch.setattr(optimizer_module, "penetration_candidates", counting_search)
    problem = build_problem(statics, body.regions, hand_on_shoulder(), scene(body), [PersonOptions()] * 2)
    base = OptimizerConfig(
        weights=default_weights(2), max_iterations=(40, 1), early_stop_slope=1e9, penetration_refresh=(1000, 1000)
    )
    refine(problem, dataclasses.replace(base, penetration_refresh_motion_m=10.0))
    only_at_start = len(searches)
    searches.clear()
    refine(problem, dataclasses.replace(base, penetration_refresh_motion_m=0.001))
    # One search at the start of each stage when nothing moves far, and one for the final
    # report; more when the arm swings a millimetre between searches.
    assert only_at_start == 3
    assert len(searches) > 5


def test_a_stage_with_another_rotation_scale_starts_from_the_same_pose(body, statics):
    people = [PersonOptions(pinned_joints=("right_elbow",)), PersonOptions()]
    problem = build_problem(statics, body.regions, hand_on_shoulder(), scene(body), people)
    variables = OptimizationVariables(problem, 0.25, 0.005)
    with torch.no_grad():
        variables.pose_offsets.copy_(torch.randn(variables.pose_offsets.shape, generator=torch.Generator().manual_seed(1)))
        variables.translation_offsets.add_(0.3)
    before, correction = variables.state(), variables.correction()
    variables.begin_stage(False, True, rotation_scale=0.5)
    after = variables.state()
    assert torch.allclose(before.local_rotations, after.local_rotations, atol=1e-6)
    assert variables.pose_offsets.abs().max() > 0  # the variables did change: half the units
    # A correction is in radians and metres: it carries over to variables of another scale.
    other = OptimizationVariables(problem, 1.0, 0.01)
    other.apply_correction(correction)
    moved = other.state()
    assert torch.allclose(moved.local_rotations, before.local_rotations, atol=1e-6)
    assert torch.allclose(moved.root_translation, before.root_translation, atol=1e-6)
    assert torch.allclose(correction.translation_offsets, torch.full((2, 3), 0.3 * 0.005))


def test_rotation_scale_needs_one_positive_value_per_stage():
    with pytest.raises(ValueError, match="rotation_scale"):
        config(rotation_scale=(0.25,))
    with pytest.raises(ValueError, match="rotation_scale"):
        config(rotation_scale=(0.25, 0.0))


def test_supporting_stiffness_is_what_a_joint_carries_when_its_subtree_stands():
    import numpy as np

    from engine.refine.problem import SUBTREE_SHARE_UNIT, subtree_stiffness, supporting_stiffness

    # A chain root -> thigh -> foot holding half, 30% and 20% of the skinning weight.
    skinning = np.array([[1.0, 0.0, 0.0]] * 5 + [[0.0, 1.0, 0.0]] * 3 + [[0.0, 0.0, 1.0]] * 2)
    parents = (-1, 0, 1)
    assert np.allclose(subtree_stiffness(skinning, parents), np.maximum(1.0, np.array([1.0, 0.5, 0.2]) / SUBTREE_SHARE_UNIT))
    assert np.allclose(supporting_stiffness(skinning, parents), np.maximum(1.0, np.array([0.0, 0.5, 0.8]) / SUBTREE_SHARE_UNIT))


def test_a_leg_standing_on_the_floor_is_held_as_hard_as_what_it_carries(body, statics):
    from engine.contacts.constraints import objective_from_samples
    from engine.refine.problem import standing_leg_joints

    one = PeopleState(torch.eye(3).repeat(1, len(body.joint_names), 1, 1), torch.zeros(1, 3), torch.zeros(1, 2))
    hand_on_head = ContactObjective((ContactTerm((((RegionPair(0, "right_hand", 0, "head"),),),), 1.0, "artist", "x"),))
    left_leg = [body.joint_names.index(n) for n in ("left_hip", "left_knee", "left_ankle")]
    right_leg = [body.joint_names.index(n) for n in ("right_hip", "right_knee", "right_ankle")]
    assert standing_leg_joints(statics, body.regions.subsample("left_foot")) == sorted(left_leg)
    held = torch.maximum(statics.stiffness, statics.supporting_stiffness)
    assert bool((held[left_leg] > statics.stiffness[left_leg]).all())

    def weights(objective, floor):
        problem = build_problem(statics, body.regions, objective, one, [PersonOptions()], floor_height=floor)
        return problem.setup.joint_weights[0]

    # The synthetic feet reach down to about 4 cm: on a floor at 5 cm both stand; on one a
    # metre lower neither does.
    standing, floating = weights(hand_on_head, 0.05), weights(hand_on_head, -1.0)
    assert torch.allclose(floating[left_leg + right_leg], weights(ContactObjective(()), -1.0)[left_leg + right_leg])
    assert torch.allclose(standing[left_leg + right_leg], held[left_leg + right_leg])
    assert torch.allclose(floating[left_leg + right_leg], statics.stiffness[left_leg + right_leg])
    # A foot a contact must move is not held: the artist's "right foot on the left leg" ...
    foot_on_leg = ContactObjective((ContactTerm((((RegionPair(0, "right_foot", 0, "left_leg"),),),), 1.0, "artist", "x"),))
    artist = weights(foot_on_leg, 0.05)
    from engine.refine.problem import CONTACT_LIMB_STAY_CLOSE

    assert torch.allclose(artist[right_leg], CONTACT_LIMB_STAY_CLOSE * statics.stiffness[right_leg])  # the moving leg, relaxed
    assert torch.allclose(artist[left_leg], held[left_leg])
    # ... but the LMM's unsided "foot on leg" can be either foot: both stay held, and the
    # minimum over the alternatives takes the foot that is free to move.
    from engine.contacts.constraints import CellPart, ParsedCell, ParsedRow, ParsedSample

    row = ParsedRow(ParsedCell((CellPart("foot"),)), ParsedCell((CellPart("leg"),)))
    lmm = objective_from_samples([ParsedSample((row,))] * 20, 1)
    (option,) = lmm.terms[0].options
    assert len(option[0]) == 2  # one row, either foot on the other leg
    assert torch.allclose(weights(lmm, 0.05)[left_leg + right_leg], held[left_leg + right_leg])


def _line_slope(values: list[float]) -> float:
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    return sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values)) / sum((i - mean_x) ** 2 for i in range(n))


def test_early_stop_is_the_slope_of_the_last_losses():
    window, slope = 20, -1e-4
    assert not stopped_falling([5.0] * (window - 1), window, slope)  # too few losses to judge
    assert stopped_falling([5.0] * window, window, slope)  # flat
    assert stopped_falling([float(v) for v in range(5, 6 + window)], window, slope)  # rising
    falling = [80.0 - 0.01 * i for i in range(40)]
    assert not stopped_falling(falling, window, slope)
    # Only the last window counts: an earlier fall does not keep a stage going.
    assert stopped_falling(falling + [79.0] * window, window, slope)
    # A zigzag whose line still falls by more than the threshold goes on.
    zigzag = [80.0 - 0.01 * i + (0.5 if i % 2 else -0.5) for i in range(window)]
    assert _line_slope(zigzag) < slope
    assert not stopped_falling(zigzag, window, slope)


def test_self_allowance_can_be_turned_off_for_a_pose_that_must_come_out_free(body, statics):
    """The benchmark's ground truth counts every self-penetration; the engine's default
    counts only what sinks deeper than the initial pose."""
    state = scene(body)
    relative = build_problem(statics, body.regions, hand_on_shoulder(), state, [PersonOptions()] * 2).setup.penetration
    absolute = build_problem(
        statics, body.regions, hand_on_shoulder(), state, [PersonOptions()] * 2, self_allowance=False
    ).setup.penetration
    assert relative.self_allowance is not None and relative.surface.self_allowance is not None
    assert absolute.self_allowance is None and absolute.surface.self_allowance is None


def test_penalty_over_a_fresh_search_equals_the_penalty_over_every_pair(body, statics):
    # The final report evaluates the interpenetration terms over the candidates of a fresh
    # search (OptimizationVariables.search_candidates), not over every pair: the same value.
    # Checked where the people overlap, so the penalty is not zero.
    start = scene(body)
    start = dataclasses.replace(start, root_translation=torch.tensor([[0.0, 0.0, 0.0], [-0.12, -0.05, 0.0]]))
    problem = build_problem(statics, body.regions, hand_on_shoulder(), start, [PersonOptions()] * 2)
    variables = OptimizationVariables(problem, 0.25, 0.005)
    weights = {name: 0.0 for name in default_weights(2).for_stage(0)} | {"penetration": 1.0}
    with torch.no_grad():
        inputs = variables.inputs()
        every_pair = float(evaluate(inputs, weights)[0])
        searched = float(evaluate(variables.search_candidates(inputs), weights)[0])
    assert every_pair > 1e-3
    assert searched == pytest.approx(every_pair, rel=1e-5)


def test_a_stage_goes_on_while_an_open_contact_still_closes():
    from engine.refine.optimizer import contact_still_closing

    window = 20
    closing = [0.30 - 0.002 * i for i in range(40)]  # 2 mm a step, still 22 cm open
    assert contact_still_closing(closing, window, -1e-4, 0.01)
    assert not contact_still_closing([0.30] * 40, window, -1e-4, 0.01)  # no progress
    assert not contact_still_closing([0.02 - 0.0005 * i for i in range(39)] + [0.005], window, -1e-4, 0.01)  # made
    assert not contact_still_closing(closing[:10], window, -1e-4, 0.01)  # too few steps to judge


def test_a_stage_stops_when_the_loss_falls_by_a_negligible_share_of_itself():
    window = 20
    # A total of 200 falling by 0.01 a step (5e-5 of itself): the absolute rule alone goes on.
    slow = [200.0 - 0.01 * i for i in range(window)]
    assert not stopped_falling(slow, window, -1e-4)
    assert stopped_falling(slow, window, -1e-4, relative_slope=3e-4)
    fast = [200.0 - 1.0 * i for i in range(window)]  # 0.5% a step: still falling
    assert not stopped_falling(fast, window, -1e-4, relative_slope=3e-4)
    # A run told never to stop early (slope inf, as the benchmarks' ground truths) never does.
    assert not stopped_falling([200.0] * window, window, float("inf"), relative_slope=3e-4)


def test_the_contact_limbs_stay_close_is_relaxed_and_the_trunk_is_not(body, statics):
    from engine.refine.problem import CONTACT_LIMB_STAY_CLOSE, contact_limb_joints

    relaxed = contact_limb_joints(statics, body.regions, hand_on_shoulder(), 2)
    names = [{body.joint_names[j] for j in joints} for joints in relaxed]
    # Person 1's right arm (its hand touches), not the shoulder it lands on or any trunk joint.
    assert names[0] == {"right_shoulder", "right_elbow", "right_wrist"}
    assert names[1] == set()
    problem = build_problem(statics, body.regions, hand_on_shoulder(), scene(body), [PersonOptions()] * 2)
    plain = build_problem(statics, body.regions, ContactObjective(()), scene(body), [PersonOptions()] * 2)
    arm, spine = body.joint_names.index("right_elbow"), body.joint_names.index("spine")
    assert float(problem.setup.joint_weights[0, arm]) == pytest.approx(CONTACT_LIMB_STAY_CLOSE * float(plain.setup.joint_weights[0, arm]))
    assert float(problem.setup.joint_weights[0, spine]) == float(plain.setup.joint_weights[0, spine])


def test_an_open_contact_relaxes_the_reaching_limb_until_it_closes(body, statics):
    """Held a hundred times harder to its pose, the arm stops where the stay-close pull
    meets the contact's, far short of the shoulder; relaxing the joints of the arm that
    reaches for the open contact (OptimizerConfig.open_contact_relax) closes it, and no other
    joint is relaxed."""
    from engine.refine.optimizer import must_close_open, reaching_joints

    problem = build_problem(statics, body.regions, hand_on_shoulder(), scene(body), [PersonOptions()] * 2)
    with torch.no_grad():
        start = body.forward(scene(body).local_rotations, scene(body).root_translation, scene(body).shape, problem.vertex_ids)
    assert must_close_open(problem, start.vertices, 0.01)
    reaching = reaching_joints(problem, start.vertices, 0.01)
    assert {body.joint_names[j] for j in torch.nonzero(reaching[0]).flatten().tolist()} == {"right_shoulder", "right_elbow", "right_wrist"}
    assert not bool(reaching[1].any())

    weights = default_weights(2)
    stiff = dataclasses.replace(weights, stay_close=tuple(100.0 * w for w in weights.stay_close))
    held = refine(problem, OptimizerConfig(weights=stiff, max_relax_rounds=0))
    relaxed = refine(problem, OptimizerConfig(weights=stiff))
    assert held.losses["contact"] > 0.1
    assert relaxed.losses["contact"] < 0.01
    # The reported losses are the problem's own, whatever was relaxed on the way.
    final = OptimizationVariables(problem, 0.4, 0.005)
    assert final.setup is problem.setup
    # Without a contact that must close (an LMM row too few answers agree on), nothing relaxes.
    lmm_only = ContactObjective((dataclasses.replace(hand_on_shoulder().terms[0], source="lmm"),))
    unagreed = build_problem(statics, body.regions, lmm_only, scene(body), [PersonOptions()] * 2)
    assert not must_close_open(unagreed, start.vertices, 0.01)
