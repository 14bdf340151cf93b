"""Contact-loss semantics against hand-computed values, on hand-placed vertices: left/right
assignment, both person orders, a part named twice, the one-person threshold f, back-off,
ground contact; plus the loss registry."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from engine.contacts.constraints import CellPart, ParsedCell, ParsedRow, ParsedSample, objective_from_samples
from engine.refine.losses import LOSS_TERMS, get_term
from engine.refine.losses.contact import build_contact_index, contact_value, pair_distances, term_values
from engine.contacts.objective import ContactObjective, ContactTerm, RegionPair
from engine.body.regions import composite_members

# One vertex layout for every person: vertex ids of each elementary region.
LAYOUT = {
    "left_hand": [0, 1],
    "right_hand": [2, 3],
    "left_shoulder_front": [4],
    "left_shoulder_back": [5],
    "right_shoulder_front": [6],
    "right_shoulder_back": [7],
    "head": [8],
    "left_foot": [9],
    "right_foot": [10],
}
NUM_VERTICES = 11
FAR = 100.0


class HandRegions:
    def subsample(self, region: str) -> np.ndarray:
        return np.array(sorted(v for m in composite_members(region) for v in LAYOUT[m]), dtype=np.int64)


def far_people(n: int) -> torch.Tensor:
    """Every vertex of every person far from every other one (distinct far corners)."""
    vertices = torch.zeros(n, NUM_VERTICES, 3)
    for p in range(n):
        for v in range(NUM_VERTICES):
            vertices[p, v] = torch.tensor([FAR * (v + 1), FAR * (p + 1) * 7, FAR * (v % 3 + 2)])
    return vertices


def put(vertices: torch.Tensor, person: int, region: str, *points) -> None:
    for vertex, point in zip(LAYOUT[region], points):
        vertices[person, vertex] = torch.tensor(point, dtype=torch.float32)


def value(objective: ContactObjective, vertices: torch.Tensor, floor: float = 0.0) -> float:
    ids = np.arange(NUM_VERTICES)
    index = build_contact_index(objective, HandRegions(), [ids] * vertices.shape[0])
    return float(contact_value(index, vertices, floor))


def region_distance(vertices, pa, ra, pb, rb) -> float:
    a = vertices[pa, HandRegions().subsample(ra)]
    b = vertices[pb, HandRegions().subsample(rb)]
    return float(torch.cdist(a, b).min())


def cell(base, both=False):
    return ParsedCell((CellPart(base, both_sides=both),), base)


def row(a, b):
    return ParsedRow(cell(a), cell(b), f"{a} | {b}")


def test_row_takes_the_closest_alternative_and_options_the_cheapest_sum():
    vertices = far_people(2)
    put(vertices, 0, "left_hand", (0, 0, 0), (1, 0, 0))
    put(vertices, 0, "right_hand", (0, 0, 3), (0, 0, 5))
    put(vertices, 1, "head", (0, 2, 0))
    put(vertices, 1, "left_shoulder_front", (0, 0, 4))
    lh_head, rh_head = RegionPair(0, "left_hand", 1, "head"), RegionPair(0, "right_hand", 1, "head")
    lh_sh, rh_sh = RegionPair(0, "left_hand", 1, "left_shoulder"), RegionPair(0, "right_hand", 1, "left_shoulder")
    one_row = ContactTerm(options=(((lh_head, rh_head),),), weight=2.0, source="artist", label="x")
    assert value(ContactObjective((one_row,)), vertices) == pytest.approx(2.0 * 2.0)  # min(2, sqrt(13))
    # option A: left hand-head (2) + right hand-shoulder (1); option B: right-head + left-shoulder
    two_options = ContactTerm(
        options=(((lh_head,), (rh_sh,)), ((rh_head,), (lh_sh,))), weight=1.0, source="lmm", label="y"
    )
    expected = min(2.0 + 1.0, math.sqrt(13.0) + 4.0)
    assert value(ContactObjective((two_options,)), vertices) == pytest.approx(expected, rel=1e-5)


def brute_force_sample_value(vertices, rows_in_order, sides_must_differ: bool) -> float:
    """DESIGN.md's rule spelled out: every left/right assignment (a base named twice by one
    person uses both sides) times both person orders; the sum over rows; the minimum."""
    best = math.inf
    for first, second in ((0, 1), (1, 0)):
        for sides in itertools.product(("left", "right"), repeat=2 * len(rows_in_order)):
            assignment = {}
            regions_ok = True
            total = 0.0
            used = {}
            for r, (a, b) in enumerate(rows_in_order):
                sa, sb = sides[2 * r], sides[2 * r + 1]
                region_a = f"{sa}_{a}" if a in ("hand", "shoulder") else a
                region_b = f"{sb}_{b}" if b in ("hand", "shoulder") else b
                used.setdefault((first, a), []).append(sa)
                used.setdefault((second, b), []).append(sb)
                total += region_distance(vertices, first, region_a, second, region_b)
            if sides_must_differ and any(len(s) == 2 and s[0] == s[1] for s in used.values()):
                regions_ok = False
            if regions_ok:
                best = min(best, total)
            assignment.clear()
    return best


def test_both_person_orders_are_tried():
    vertices = far_people(2)
    # Only the swapped order touches: Person 2's right hand on Person 1's left shoulder.
    put(vertices, 1, "right_hand", (0, 0, 0), (0, 0, 0.1))
    put(vertices, 0, "left_shoulder_front", (0, 0, 0.03))
    objective = objective_from_samples([ParsedSample(rows=(row("hand", "shoulder"),))], 2)
    got = value(objective, vertices)
    assert got == pytest.approx(0.03, abs=1e-5)
    assert got == pytest.approx(brute_force_sample_value(vertices, [("hand", "shoulder")], False), abs=1e-5)


def test_a_part_named_twice_uses_each_side_once():
    vertices = far_people(2)
    # Person 1's left hand touches Person 2's head and left shoulder; the right hand is 0.5 away.
    put(vertices, 0, "left_hand", (0, 0, 0), (0, 0, 0))
    put(vertices, 1, "head", (0, 0, 0))
    put(vertices, 1, "left_shoulder_front", (0, 0, 0))
    put(vertices, 0, "right_hand", (0.5, 0, 0), (0.5, 0, 0))
    sample = ParsedSample(rows=(row("hand", "head"), row("hand", "shoulder")))
    got = value(objective_from_samples([sample], 2), vertices)
    # One row may use the left hand (0), the other must use the right hand (0.5).
    assert got == pytest.approx(0.5, abs=1e-5)
    assert got == pytest.approx(brute_force_sample_value(vertices, [("hand", "head"), ("hand", "shoulder")], True), abs=1e-5)


def test_two_person_samples_are_averaged_over_all_samples():
    vertices = far_people(2)
    put(vertices, 0, "right_hand", (0, 0, 0), (0, 0, 0))
    put(vertices, 1, "head", (0, 0, 0.2))
    samples = [ParsedSample(rows=(row("hand", "head"),))] * 3 + [ParsedSample(rows=(), empty=True)]
    got = value(objective_from_samples(samples, 2, empty_backoff=2), vertices)
    assert got == pytest.approx(3 * 0.2 / 4, abs=1e-5)


def test_one_person_threshold_f_keeps_only_constraints_named_often_enough():
    vertices = far_people(1)
    put(vertices, 0, "right_hand", (0, 0, 0), (0, 0, 0))
    put(vertices, 0, "head", (0, 0, 0.3))
    put(vertices, 0, "left_foot", (0, 0, 0.7))
    samples = [ParsedSample(rows=(row("hand", "head"),))] * 10 + [ParsedSample(rows=(row("foot", "ground"),))] * 9
    samples += [ParsedSample(rows=(row("hand", "stomach"),))]
    objective = objective_from_samples(samples, 1, min_samples=10)
    assert len(objective.terms) == 1
    # weight 1, min over left/right variants: the right hand is the closer one.
    assert value(objective, vertices, floor=0.0) == pytest.approx(0.3, abs=1e-5)
    lower = objective_from_samples(samples, 1, min_samples=9)
    assert value(lower, vertices, floor=0.0) == pytest.approx(0.3 + 0.7, abs=1e-5)


def test_back_off_drops_the_lmm_terms():
    vertices = far_people(2)
    samples = [ParsedSample(rows=(row("hand", "head"),))] * 18 + [ParsedSample(rows=(), empty=True)] * 2
    objective = objective_from_samples(samples, 2, empty_backoff=2)
    assert objective.backed_off and not objective.terms
    assert value(objective, vertices) == 0.0


def test_ground_distance_is_the_lowest_vertex_height_above_the_floor():
    vertices = far_people(1)
    put(vertices, 0, "left_foot", (0, 0, 0.3))
    put(vertices, 0, "right_foot", (0, 0, -0.05))
    left = RegionPair(0, "left_foot", 0, "ground")
    right = RegionPair(0, "right_foot", 0, "ground")
    objective = ContactObjective((ContactTerm((((left,),),), 1.0, "artist", "l"), ContactTerm((((right,),),), 1.0, "artist", "r")))
    index = build_contact_index(objective, HandRegions(), [np.arange(NUM_VERTICES)])
    values = term_values(index, pair_distances(index, vertices, 0.1))
    assert values.tolist() == pytest.approx([0.2, 0.15], abs=1e-6)  # sinking counts as a gap


def test_contact_gradient_reaches_only_the_nearest_vertices():
    vertices = far_people(2)
    put(vertices, 0, "right_hand", (0, 0, 0), (0, 0, 1))
    put(vertices, 1, "head", (0, 0.5, 0))
    vertices.requires_grad_(True)
    pair = RegionPair(0, "right_hand", 1, "head")
    objective = ContactObjective((ContactTerm((((pair,),),), 1.0, "artist", "x"),))
    index = build_contact_index(objective, HandRegions(), [np.arange(NUM_VERTICES)] * 2)
    contact_value(index, vertices, 0.0).backward()
    moved = (vertices.grad.abs().sum(-1) > 0).nonzero().tolist()
    assert moved == [[0, LAYOUT["right_hand"][0]], [1, LAYOUT["head"][0]]]
    assert vertices.grad[0, 2].tolist() == pytest.approx([0.0, -1.0, 0.0])


def test_registry_raises_on_unknown_names():
    assert set(LOSS_TERMS) == {"contact", "stay_close", "joint_limits", "penetration", "shape_prior", "keypoints_2d"}
    with pytest.raises(KeyError, match="unknown loss term 'gmm'.*contact"):
        get_term("gmm")


def _inputs(setup, joints=None, rotations=None):
    from engine.refine.losses import LossInputs

    n = 1
    joints = torch.zeros(n, 2, 3) if joints is None else joints
    rotations = torch.eye(3).repeat(n, 2, 1, 1) if rotations is None else rotations
    return LossInputs(
        setup=setup,
        vertices=torch.zeros(n, 1, 3),
        joints=joints,
        joint_frames=torch.eye(4).repeat(n, 2, 1, 1),
        local_rotations=rotations,
        pose_offsets=torch.zeros(n, 2, 3),
        translation_offsets=torch.zeros(n, 3),
        shape=torch.zeros(n, 1),
    )


def _setup(**changes):
    from engine.refine.losses import LossSetup

    index = build_contact_index(ContactObjective(()), HandRegions(), [np.arange(NUM_VERTICES)])
    base = dict(
        contact=index,
        floor_height=0.0,
        joint_weights=torch.ones(1, 2),
        translation_weights=torch.ones(1),
        joint_limits=torch.tensor([math.inf, math.radians(90.0)]),
        initial_shape=torch.zeros(1, 1),
    )
    base.update(changes)
    return LossSetup(**base)


def test_keypoint_term_reprojects_through_the_pinhole_camera():
    from engine.refine.losses.terms import KeypointSetup

    # Camera at the origin looking along +z: a joint at (0.2, -0.1, 2) projects to
    # (cx + f * 0.1, cy - f * 0.05) = (600, 450) with f = 1000, (cx, cy) = (500, 500).
    keypoints = KeypointSetup(
        targets=torch.tensor([[[603.0, 446.0], [0.0, 0.0]]]),
        confidence=torch.tensor([[1.0, 0.0]]),
        world_to_camera=torch.eye(4),
        focal=torch.tensor([1000.0, 1000.0]),
        principal=torch.tensor([500.0, 500.0]),
    )
    joints = torch.tensor([[[0.2, -0.1, 2.0], [5.0, 5.0, 5.0]]])
    value = get_term("keypoints_2d")(_inputs(_setup(keypoints=keypoints), joints=joints))["keypoints_2d"]
    assert float(value) == pytest.approx(3.0**2 + 4.0**2, rel=1e-5)


def test_joint_limit_term_penalises_only_the_excess_angle():
    from engine.refine.losses.geometry import axis_angle_to_matrix

    rotations = axis_angle_to_matrix(torch.tensor([[[0.0, 0.0, 2.5], [0.0, math.radians(100.0), 0.0]]]))
    value = get_term("joint_limits")(_inputs(_setup(), rotations=rotations))["joint_limits"]
    # Joint 0 has no limit; joint 1 is 10 degrees past its 90.
    assert float(value) == pytest.approx(math.radians(10.0) ** 2, rel=1e-4)


def test_lmm_rows_saturate_and_artist_rows_stay_plain():
    vertices = far_people(2)
    put(vertices, 0, "right_hand", (0.0, 0.0, 0.0), (0.0, 0.5, 0.0))
    put(vertices, 1, "head", (0.3, 0.0, 0.0))
    pair = RegionPair(0, "right_hand", 1, "head")
    scale = 0.1
    ids = np.arange(NUM_VERTICES)
    for source, expected in (("lmm", scale * (1.0 - math.exp(-0.3 / scale))), ("artist", 0.3)):
        objective = ContactObjective((ContactTerm(options=(((pair,),),), weight=2.0, source=source, label="x"),))
        index = build_contact_index(objective, HandRegions(), [ids] * 2, lmm_saturation_m=scale)
        assert float(contact_value(index, vertices, 0.0)) == pytest.approx(2.0 * expected, rel=1e-5)
        # Reported distances are the plain distance whatever the penalty.
        assert float(term_values(index, pair_distances(index, vertices, 0.0))[0]) == pytest.approx(0.3, rel=1e-5)


def test_surface_test_finds_a_point_sunk_below_the_other_body():
    from engine.refine.losses.penetration import SURFACE_TOLERANCE_M, SurfaceSetup, surface_candidates, surface_value

    # Person 2's sample: a flat patch facing +z; person 1's one point 2 cm below its centre.
    grid = torch.tensor([[x, y, 0.0] for x in (-0.01, 0.0, 0.01) for y in (-0.01, 0.0, 0.01)])
    vertices = torch.stack([grid + torch.tensor([5.0, 5.0, 5.0]), grid])
    vertices[0, 4] = torch.tensor([0.0, 0.0, -0.02])
    count = grid.shape[0]
    setup = SurfaceSetup(
        slots=torch.arange(count),
        rest_normals=torch.tensor([[0.0, 0.0, 1.0]]).repeat(count, 1),
        skinning=torch.ones(count, 1),
        rest_frames_inverse=torch.eye(4)[None],
        self_allowed=torch.zeros(count, count, dtype=torch.bool),
    )
    frames = torch.eye(4).repeat(2, 1, 1, 1)
    candidates = surface_candidates(setup, vertices, frames)
    # The sunk point against the patch centre; other rows are pairs near, not past, the
    # surface (kept as candidates within the search margin).
    assert [0, 1, 4, 4] in candidates[:, :4].tolist()
    penalty, deepest = surface_value(setup, vertices, frames, candidates)
    assert float(deepest) == pytest.approx(0.02, abs=1e-6)
    assert float(penalty) > 0.0
    vertices[0, 4] = torch.tensor([0.0, 0.0, -(SURFACE_TOLERANCE_M - 0.001)])  # within tolerance: free
    assert float(surface_value(setup, vertices, frames, surface_candidates(setup, vertices, frames))[0]) == 0.0


def test_surface_test_follows_a_point_sliding_to_another_surface_vertex_between_searches():
    import math

    from engine.refine.losses.penetration import SurfaceSetup, nearest_of_groups, surface_candidates, surface_value

    # Person 2's sample: 24 vertices on a circle of radius 10 cm (3.9 cm apart) with outward
    # normals; person 1's first vertex sits 1 cm inside, by the vertex at angle 0, the others far.
    count = 24
    angles = torch.arange(count) * (2 * math.pi / count)
    radial = torch.stack([angles.cos(), angles.sin(), torch.zeros(count)], 1)
    far = torch.tensor([5.0, 5.0, 5.0]) + 0.1 * radial
    vertices = torch.stack([far.clone(), 0.1 * radial])
    vertices[0, 0] = torch.tensor([0.09, 0.0, 0.0])
    setup = SurfaceSetup(
        slots=torch.arange(count),
        rest_normals=radial,
        skinning=torch.ones(count, 1),
        rest_frames_inverse=torch.eye(4)[None],
        self_allowed=torch.zeros(count, count, dtype=torch.bool),
    )
    frames = torch.eye(4).repeat(2, 1, 1, 1)
    candidates = surface_candidates(setup, vertices, frames)
    mine = candidates[(candidates[:, 0] == 0) & (candidates[:, 1] == 1) & (candidates[:, 2] == 0)]
    assert len(set(mine[:, 4].tolist())) == 1  # one point against one body: one group
    assert set(mine[:, 3].tolist()) == {count - 1, 0, 1}  # its nearest and both neighbours
    assert nearest_of_groups(setup, vertices, candidates)[:, :4].tolist().count([0, 1, 0, 0]) == 1
    # Slid round by 12 degrees, still 1 cm inside, without a new search: measured against the
    # vertex now nearest (at 15 degrees), 10.1 mm deep; the one nearest at the search would
    # give 12.0 mm.
    turn = math.radians(12.0)
    vertices[0, 0] = 0.09 * torch.tensor([math.cos(turn), math.sin(turn), 0.0])
    assert [0, 1, 0, 1] in nearest_of_groups(setup, vertices, candidates).tolist()
    # Non-finite vertices still give one row per group (the loss turns non-finite and the
    # optimizer's guard ends the stage), not an indexing error.
    broken = vertices * float("nan")
    assert len(nearest_of_groups(setup, broken, candidates)) == int(candidates[-1, 4]) + 1
    only_mine = candidates[candidates[:, 0] == 0]
    only_mine = torch.cat([only_mine[:, :4], torch.zeros_like(only_mine[:, :1])], 1)
    assert float(surface_value(setup, vertices, frames, only_mine)[1]) == pytest.approx(0.1 - 0.09 * math.cos(math.radians(3.0)), abs=1e-5)
    # Rows prepared once per search (as the optimizer does) choose the same rows and refuse
    # vertices of another count per person.
    from engine.refine.losses.penetration import surface_rows

    prepared = surface_rows(setup, candidates, count)
    assert torch.equal(nearest_of_groups(setup, vertices, prepared), nearest_of_groups(setup, vertices, candidates))
    with pytest.raises(ValueError, match="prepared for 24 vertices"):
        surface_value(setup, vertices[:, :20], frames, prepared)


def test_surface_search_by_clusters_finds_exactly_what_comparing_every_vertex_finds():
    from engine.refine.losses.penetration import SurfaceSetup, surface_candidates, surface_clusters

    generator = torch.Generator().manual_seed(3)
    count = 400
    # Two lumpy bodies 5 cm apart with overlapping parts, so some points of each sit near or
    # below the other's surface and many cluster pairs are close but not all.
    rest = torch.rand(count, 3, generator=generator) * torch.tensor([0.2, 0.2, 0.6])
    normals = torch.nn.functional.normalize(rest - rest.mean(0), dim=-1)
    vertices = torch.stack([rest, rest + torch.tensor([0.05, 0.0, 0.1])])
    groups = (rest[:, 2] * 10).long().numpy()  # bands along z stand for bones
    allowed = torch.rand(count, count, generator=generator) > 0.3
    clusters = torch.tensor(surface_clusters(rest.numpy(), groups, max_size=16))
    assert sorted(clusters[clusters >= 0].tolist()) == list(range(count))  # each vertex in one cluster
    common = dict(
        slots=torch.arange(count), rest_normals=normals, skinning=torch.ones(count, 1),
        rest_frames_inverse=torch.eye(4)[None], self_allowed=allowed,
    )
    frames = torch.eye(4).repeat(2, 1, 1, 1)
    by_clusters = surface_candidates(SurfaceSetup(**common, cluster_members=clusters), vertices, frames)
    every_vertex = surface_candidates(SurfaceSetup(**common), vertices, frames)
    assert len(every_vertex) > 50
    assert {1, 0} <= set(every_vertex[:, 1].tolist())  # rows against both bodies
    assert sorted(map(tuple, by_clusters.tolist())) == sorted(map(tuple, every_vertex.tolist()))


def test_capsules_of_a_contact_pairs_other_region_do_not_hold_its_vertices_back():
    from support.synthetic_body import SyntheticBody

    from engine.refine.problem import BodyStatics, PersonOptions, build_problem, contact_capsule_exemptions
    from engine.refine.optimizer import PeopleState

    body = SyntheticBody()
    statics = BodyStatics(body, body.default_shape())
    pair = RegionPair(0, "right_hand", 1, "left_shoulder")
    objective = ContactObjective((ContactTerm(options=(((pair,),),), weight=1.0, source="artist", label="x"),))
    rotations = torch.eye(3).repeat(2, len(body.joint_names), 1, 1)
    initial = PeopleState(rotations, torch.tensor([[0.0, 0.0, 0.0], [-1.2, -0.3, 0.0]]), torch.zeros(2, 2))
    problem = build_problem(statics, body.regions, objective, initial, [PersonOptions()] * 2)
    setup = problem.setup.penetration
    tested = problem.vertex_ids[setup.vertex_slots].numpy()
    bones = setup.capsules.bones.tolist()
    exempt = contact_capsule_exemptions(objective, body.regions, statics, tested, bones)
    hand = np.isin(tested, body.regions.vertex_ids("right_hand"))
    dominant = statics.skinning.argmax(1)
    shoulder_bones = {int(b) for b in dominant[body.regions.vertex_ids("left_shoulder")]}
    assert hand.any() and exempt.any()
    for column, bone in enumerate(bones):
        # Hand vertices skip exactly the capsules of the bones under the shoulder region ...
        if bone in shoulder_bones:
            assert exempt[hand, column].all()
    # ... and every vertex keeps every capsule of a bone that carries neither region.
    hand_bones = {int(b) for b in dominant[body.regions.vertex_ids("right_hand")]}
    others = [c for c, b in enumerate(bones) if b not in shoulder_bones | hand_bones]
    assert others and not exempt[:, others].any()
    assert torch.equal(setup.other_mask, torch.as_tensor(~exempt))
    # The initial pose's self-penetration allowance, one per person, tested vertex and capsule.
    assert setup.self_allowance is not None and setup.self_allowance.shape == (2, len(tested), len(bones))
    assert setup.surface.self_allowance is not None and setup.surface.self_allowance.shape == (2, len(setup.surface.slots))


def test_each_persons_capsules_fit_their_own_shape():
    """Two people of different builds: each person's capsules are the ones fitted to their own
    rest body, and every way of measuring depth (exact, by products, candidate rows) reads
    the capsule person's own radius."""
    from support.synthetic_body import SyntheticBody

    from engine.refine.losses.penetration import (
        TOLERANCE_M,
        _approximate_depths,
        capsule_rows,
        penetration_candidates,
        penetration_depths,
        penetration_value,
    )
    from engine.refine.optimizer import PeopleState
    from engine.refine.problem import BodyStatics, PersonOptions, build_problem

    body = SyntheticBody()
    shapes = torch.tensor([[0.0, 0.0], [1.0, 0.5]])
    statics = BodyStatics(body, shapes[0])
    own = [BodyStatics(body, shape).capsules for shape in shapes]
    assert not torch.allclose(own[0].radius, own[1].radius, atol=1e-3)
    capsules = statics.capsules_for(shapes)
    assert capsules.per_person and torch.equal(capsules.radius, torch.stack([c.radius for c in own]))
    assert statics.capsules_for(shapes[:1]) is statics.capsules  # one shape: the body's own

    pair = RegionPair(0, "right_hand", 1, "left_shoulder")
    objective = ContactObjective((ContactTerm(options=(((pair,),),), weight=1.0, source="artist", label="x"),))
    rotations = torch.eye(3).repeat(2, len(body.joint_names), 1, 1)
    # Face to face, close enough that the people's capsules reach into each other.
    initial = PeopleState(rotations, torch.tensor([[0.0, 0.0, 0.0], [-0.25, -0.05, 0.0]]), shapes)
    problem = build_problem(statics, body.regions, objective, initial, [PersonOptions()] * 2)
    setup = problem.setup.penetration
    assert torch.equal(setup.capsules.radius, capsules.radius)
    with torch.no_grad():
        posed = body.forward(initial.local_rotations, initial.root_translation, initial.shape, problem.vertex_ids)
    vertices, frames = posed.vertices, posed.joint_frames
    exact = penetration_depths(setup, vertices, frames)
    # Person 2's capsules posed with person 2's own single-body capsules give the same depths.
    from engine.refine.losses.penetration import signed_depth, posed_capsules

    start, end = posed_capsules(own[1], frames[1:])
    points = vertices[0:1, setup.vertex_slots]
    alone = signed_depth(points, start, end, own[1].radius[None])[0].masked_fill(~setup.other_mask, -1.0)
    assert torch.allclose(exact[0, 1], alone, atol=1e-6)
    by_products = _approximate_depths(setup, vertices, frames)
    assert torch.allclose(by_products, exact, atol=1e-3)
    deep = (exact > TOLERANCE_M).nonzero()
    assert len(deep) > 0 and {0, 1} <= set(deep[:, 1].tolist())
    found = {tuple(row) for row in penetration_candidates(setup, vertices, frames).tolist()}
    assert {tuple(row) for row in deep.tolist()} <= found
    value, _ = penetration_value(setup, vertices, frames, deep)
    prepared = capsule_rows(setup, deep, vertices.shape[1])
    assert torch.equal(prepared.radius, capsules.radius[deep[:, 1], deep[:, 3]])
    assert float(penetration_value(setup, vertices, frames, prepared)[0]) == pytest.approx(float(value), rel=1e-6)


def test_self_penetration_counts_only_what_sinks_deeper_than_the_initial_pose():
    from engine.refine.losses.penetration import (
        TOLERANCE_M,
        DEPTH_SCALE_M,
        Capsules,
        PenetrationSetup,
        initial_self_allowance,
        penetration_value,
    )

    # One capsule per person along x, radius 0.1, both people's capsules in the same place;
    # one tested vertex per person.
    capsules = Capsules(
        bones=torch.tensor([0]),
        start_rest=torch.tensor([[0.0, 0.0, 0.0]]),
        end_rest=torch.tensor([[1.0, 0.0, 0.0]]),
        radius=torch.tensor([0.1]),
        rest_frames_inverse=torch.eye(4)[None],
    )
    setup = PenetrationSetup(
        capsules=capsules,
        vertex_slots=torch.tensor([0]),
        self_mask=torch.ones(1, 1, dtype=torch.bool),
        other_mask=torch.ones(1, 1, dtype=torch.bool),
    )
    frames = torch.eye(4).repeat(2, 1, 1, 1)
    # Person 1's vertex 3 cm inside the capsules (its own and person 2's); person 2's far away.
    initial = torch.tensor([[[0.5, 0.07, 0.0]], [[0.5, 5.0, 0.0]]])
    allowance = initial_self_allowance(setup, initial, frames)
    assert allowance.shape == (2, 1, 1)
    assert float(allowance[0, 0, 0]) == pytest.approx(0.03 - TOLERANCE_M, abs=1e-6)
    assert float(allowance[1, 0, 0]) == 0.0
    with_allowance = PenetrationSetup(**{**setup.__dict__, "self_allowance": allowance})
    own = torch.tensor([[0, 0, 0, 0]])  # (vertex person, capsule person, vertex, capsule)
    other = torch.tensor([[0, 1, 0, 0]])
    # As deep as in the initial pose: free in its own capsule, not in the other person's.
    assert float(penetration_value(with_allowance, initial, frames, own)[0]) == 0.0
    other_cost = float(penetration_value(with_allowance, initial, frames, other)[0])
    assert other_cost == pytest.approx(((0.03 - TOLERANCE_M) / DEPTH_SCALE_M) ** 2, rel=1e-4)
    # One centimetre deeper than initially: only that centimetre counts within the body.
    deeper = initial.clone()
    deeper[0, 0, 1] = 0.06
    assert float(penetration_value(with_allowance, deeper, frames, own)[0]) == pytest.approx((0.01 / DEPTH_SCALE_M) ** 2, rel=1e-3)
    # Without the allowance the whole depth past the tolerance counts.
    assert float(penetration_value(setup, deeper, frames, own)[0]) == pytest.approx(((0.04 - TOLERANCE_M) / DEPTH_SCALE_M) ** 2, rel=1e-3)
    # Rows prepared once per search (as the optimizer does) give the same value, and refuse
    # vertices of another count per person, whose flattened rows they would misread.
    from engine.refine.losses.penetration import capsule_rows

    prepared = capsule_rows(with_allowance, other, initial.shape[1])
    assert float(penetration_value(with_allowance, initial, frames, prepared)[0]) == pytest.approx(other_cost, rel=1e-6)
    with pytest.raises(ValueError, match="prepared for 1 vertices"):
        penetration_value(with_allowance, initial.repeat(1, 2, 1), frames, prepared)


def test_surface_self_test_counts_only_what_sinks_deeper_than_the_initial_pose():
    from engine.refine.losses.penetration import (
        DEPTH_SCALE_M,
        SURFACE_TOLERANCE_M,
        SurfaceSetup,
        initial_surface_self_allowance,
        surface_candidates,
        surface_value,
    )

    # One body: a flat patch facing +z (samples 0-8) and a point of the same body (sample 9)
    # 2 cm below the patch centre, e.g. a hand pressed into its own hip.
    grid = torch.tensor([[x, y, 0.0] for x in (-0.01, 0.0, 0.01) for y in (-0.01, 0.0, 0.01)])
    vertices = torch.cat([grid, torch.tensor([[0.0, 0.0, -0.02]])])[None]
    count = vertices.shape[1]
    allowed = torch.zeros(count, count, dtype=torch.bool)
    allowed[9, :9] = True
    setup = SurfaceSetup(
        slots=torch.arange(count),
        rest_normals=torch.tensor([[0.0, 0.0, 1.0]]).repeat(count, 1),
        skinning=torch.ones(count, 1),
        rest_frames_inverse=torch.eye(4)[None],
        self_allowed=allowed,
    )
    frames = torch.eye(4)[None, None]
    allowance = initial_surface_self_allowance(setup, vertices, frames)
    assert allowance.shape == (1, count)
    assert float(allowance[0, 9]) == pytest.approx(0.02 - SURFACE_TOLERANCE_M, abs=1e-6)
    assert float(allowance[0, :9].abs().max()) == 0.0
    held = setup.with_self_allowance(allowance)
    assert held.clusters[3] is setup.clusters[3]  # the cluster tables are not built again
    # As posed: free. Without the allowance the same pose is penalised.
    assert float(surface_value(held, vertices, frames, surface_candidates(held, vertices, frames))[0]) == 0.0
    assert float(surface_value(setup, vertices, frames, surface_candidates(setup, vertices, frames))[0]) > 0.0
    # One centimetre deeper: that centimetre counts.
    deeper = vertices.clone()
    deeper[0, 9, 2] = -0.03
    penalty = float(surface_value(held, deeper, frames, surface_candidates(held, deeper, frames))[0])
    assert penalty == pytest.approx((0.01 / DEPTH_SCALE_M) ** 2, rel=1e-3)


def test_contact_value_and_gradient_equal_the_weighted_term_values():
    """contact_value decides the counting option and alternatives without gradient and sums
    the chosen pair distances; value and gradient must be those of the min/sum/min objective,
    for plain and saturated (LMM) terms alike."""
    from engine.refine.losses.contact import saturate

    generator = torch.Generator().manual_seed(5)
    vertices = torch.rand(2, NUM_VERTICES, 3, generator=generator)
    samples = [
        ParsedSample(rows=(row("hand", "shoulder"), row("foot", "head"))),
        ParsedSample(rows=(ParsedRow(cell("hand", both=True), cell("head"), "hands | head"),)),
        ParsedSample(rows=(row("hand", "hand"), row("hand", "shoulder"))),
        # A cell with alternatives: its row counts the nearer of shoulder and head.
        ParsedSample(rows=(ParsedRow(cell("foot"), ParsedCell((CellPart("shoulder"), CellPart("head")), "shoulder, head"), "x"),)),
    ]
    objective = objective_from_samples(samples, 2)
    ids = np.arange(NUM_VERTICES)
    for scale in (None, 0.2):
        index = build_contact_index(objective, HandRegions(), [ids] * 2, lmm_saturation_m=scale)
        fast = vertices.clone().requires_grad_(True)
        value_fast = contact_value(index, fast, 0.0)
        value_fast.backward()
        slow = vertices.clone().requires_grad_(True)
        distances = pair_distances(index, slow, 0.0)
        values = term_values(index, saturate(distances, scale) if scale else distances)
        value_slow = (index.term_weights * values).sum()
        value_slow.backward()
        assert float(value_fast.detach()) == pytest.approx(float(value_slow.detach()), rel=1e-6)
        assert fast.grad.abs().max() > 0
        torch.testing.assert_close(fast.grad, slow.grad)


def test_penetration_penalties_match_their_formulas_in_value_and_gradient():
    """The capsule and surface penalties are single autograd nodes with a hand-written
    backward; they must give what the formulas give through plain torch operations."""
    from engine.refine.losses.penetration import DEPTH_SCALE_M, _CapsulePenalty, _paired_depth, _SurfacePenalty

    generator = torch.Generator().manual_seed(11)
    count = 200

    def rand(*shape):
        return torch.rand(*shape, generator=generator, dtype=torch.float64)

    points = (0.2 * rand(count, 3)).requires_grad_(True)
    start = (0.2 * rand(count, 3)).requires_grad_(True)
    end = (start.detach() + 0.1 * rand(count, 3)).requires_grad_(True)
    radius = 0.05 + 0.05 * rand(count)
    onset = 0.005 + 0.01 * rand(count)
    normals = torch.nn.functional.normalize(rand(count, 3) - 0.5, dim=-1)
    surface = (0.2 * rand(count, 3)).requires_grad_(True)
    weights = (1.0, 3.0)

    def gradients(penalty):
        inputs = (points, start, end, surface)
        for tensor in inputs:
            tensor.grad = None
        penalty.backward()
        return [None if t.grad is None else t.grad.clone() for t in inputs]

    capsule, deepest = _CapsulePenalty.apply(points, torch.stack([start, end], dim=1), radius, onset)
    surface_penalty = _SurfacePenalty.apply(torch.stack([points, surface], dim=1), normals, onset)[0]
    fast = gradients(weights[0] * capsule + weights[1] * surface_penalty)
    depth = _paired_depth(points, start, end, radius)
    excess = torch.relu(depth - onset) / DEPTH_SCALE_M
    surface_excess = torch.relu(-((points - surface) * normals).sum(-1) - onset) / DEPTH_SCALE_M
    reference_capsule = (excess * excess).sum()
    slow = gradients(weights[0] * reference_capsule + weights[1] * (surface_excess * surface_excess).sum())
    assert int((excess > 0).sum()) > 20 and int((surface_excess > 0).sum()) > 20  # both penalties act
    assert float(capsule.detach()) == pytest.approx(float(reference_capsule.detach()), rel=1e-12)
    assert float(deepest) == pytest.approx(float(depth.max().detach()), rel=1e-12)
    for got, expected in zip(fast, slow):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


def test_touch_distance_pulls_no_closer():
    """With touch_m, a pair closer than it costs nothing and a farther one costs d - touch_m:
    regions a few millimetres apart touch, and the loss does not pull one into the other."""
    objective = ContactObjective((ContactTerm(options=(((RegionPair(0, "left_hand", 1, "head"),),),), weight=1.0, source="artist", label="x"),))
    ids = np.arange(NUM_VERTICES)
    index = build_contact_index(objective, HandRegions(), [ids] * 2, touch_m=0.004)
    for gap, expected in ((0.003, 0.0), (0.05, 0.046)):
        vertices = far_people(2)
        put(vertices, 0, "left_hand", (0.0, 0.0, 1.0), (0.0, 0.0, 1.0))
        put(vertices, 1, "head", (gap, 0.0, 1.0))
        vertices.requires_grad_(True)
        loss = contact_value(index, vertices, 0.0)
        assert float(loss.detach()) == pytest.approx(expected, abs=1e-6)
        loss.backward()
        assert (float(vertices.grad.abs().sum()) == 0.0) == (expected == 0.0)
