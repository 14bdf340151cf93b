"""Generated contact scenes: one or two Anny people, a ground-truth pose whose contacts hold, an
initial pose perturbed the way a pose regressor errs, and 20 LMM answers (DESIGN.md section 4,
"Evaluation discipline").

Seeds. ``generate_scene(seed)`` is deterministic in ``seed``: the contact type is
``CONTACT_TYPES[seed % len(CONTACT_TYPES)]``, everything else (side, shapes, placement, seed
pose jitter, noise, answers) is drawn from numpy generators seeded with ``[seed, attempt,
stream]``. Two disjoint seed sets:

* ``TUNING_SEEDS``: the only scenes any default of the engine may be chosen on (look at them,
  tune on them);
* ``REPORT_SEEDS``: reported, never tuned on. A default chosen because it helps a report
  scene makes the report set worthless; find the problem on a tuning scene instead.

Both are runs of consecutive seeds whose length is a multiple of the number of types, so every
type appears equally often in each.

Ground truth. The seed pose (the type's hand-set joint turns from the rest pose, jittered) is
optimized with the engine's own machinery (``build_problem`` and ``refine``) under this
module's explicit settings ``GT_REACH``, ``GT_THROUGH`` and ``GT_REPAIR`` (never the engine's
defaults, so a change of those does not change the scenes; a change of the engine's losses or
optimizer code still does, hence the cache below): the contacts are made with the
interpenetration term on; if that leaves penetration, it is repaired with the contacts held;
if that fails too, the contacts are made without the term (the way may pass through the other
body, a hugging arm) and then repaired (see ``solve_ground_truth``). Every run holds the feet
that the contacts leave free on the floor z = 0 (people stand) and the joint limits hard; a
region on the floor is optimized on its subsample plus its extreme vertices
(``GroundTruthRegions``). The scene is accepted when every contact (and every free foot's
floor contact) is within ``MAX_GT_CONTACT_M`` on the full region vertex sets and the mesh
penetration (between the people, or between one person's contact regions) is at most
``MAX_GT_PENETRATION_M``. Otherwise, and when no noise draw below fits, the generator moves to
attempt 1, 2, ...: everything but the type is drawn again from the seeds ``[seed, attempt,
stream]`` (the derived sub-seed), at most ``MAX_ATTEMPTS`` times; the attempt used and why the
earlier ones were rejected are in ``Scene.info``. Shapes are drawn again (same generator)
until both statures are within ``STATURE_RANGE_M`` and the type's stature gap holds.

Initial pose. The ground truth with noise like a regressor's: every kinematic chain (spine,
neck, arms, legs) turned by a random rotation spread over its joints, 5-20 degrees in all
(standing legs 5-10), the global orientation by 1-3 degrees; the chains that make the contact
get additional noise (the most opening of NOISE_DIRECTIONS random directions, every joint's
turn at most ``MAX_JOINT_NOISE_DEG``) scaled by bisection until the ground-truth contacts open
to a target drawn in 10-60 cm (largest contact distance on full region sets); then the feet
are put back on the floor and the roots shifted by a few centimetres (1 cm vertically). A
draw is kept when its opening is in 10-60 cm, its penetration at most
``MAX_INITIAL_PENETRATION_M`` and no part below the floor by more than 1 cm: the first one
within 5 cm of the target, else the closest of ``MAX_NOISE_DRAWS``.

Answers. ``engine.synth.answers``: 20 texts with reasoning and a Markdown table; 0-5 empty,
0-2 wrong only, at least 13 naming the true contact, some with an extra wrong row, sides,
swapped person order, synonyms and plurals.

Cache. Built scenes are kept in ``engine.cache.cache_dir() / "synth"``, one file per seed,
named by ``GENERATOR_VERSION``, the seed and the body's identity (torch.save of plain tensors
and a JSON string; read with weights_only=True). Never committed: a ground truth is an
optimization whose end moves with the engine's code and the processor's rounding. Bump
``GENERATOR_VERSION`` with any change to what a seed builds.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.body.region_map import REGION_RULES_VERSION
from engine.body.regions import GROUND
from engine.cache import cache_dir
from engine.contacts.objective import ContactObjective, ContactTerm, RegionPair
from engine.files import atomic_file
from engine.refine.losses.geometry import axis_angle_to_matrix
from engine.refine.optimizer import OptimizerConfig, PeopleState, StageWeights, refine
from engine.refine.problem import BodyStatics, PersonOptions, build_problem
from engine.synth.answers import answer_texts
from engine.synth.poses import (
    ANNY_CHAINS,
    FLOOR,
    Contact,
    below_floor,
    contact_distances,
    mirror_region,
    mirror_turn,
    penetration_depth,
    placement_state,
    posed_vertices,
    turn_joints,
)
from engine.synth.types import CONTACT_TYPES, ContactType, draw

GENERATOR_VERSION = 3

NUM_TYPES = len(CONTACT_TYPES)
# Defaults of the engine may be chosen on these scenes only. As many as the report set: on
# 42 (three per type) a change could gain 2 scenes by chance and lose 4 on the report set
# (restarts on each side of an open contact, chosen by the objective's total).
TUNING_SEEDS: tuple[int, ...] = tuple(range(0, 6 * NUM_TYPES))
# Reported, never tuned on.
REPORT_SEEDS: tuple[int, ...] = tuple(range(100_000, 100_000 + 6 * NUM_TYPES))

MAX_GT_CONTACT_M = 0.005
MAX_GT_PENETRATION_M = 0.005
MAX_ATTEMPTS = 6

# Phenotype bounds (Anny: each in [0, 1], 0.5 average): adults of either gender, from slight
# to heavy, short to tall.
SHAPE_BOUNDS: dict[str, tuple[float, float]] = {
    "gender": (0.0, 1.0),
    "age": (0.5, 0.8),
    "muscle": (0.25, 0.75),
    "weight": (0.25, 0.75),
    "height": (0.2, 0.8),
    "proportions": (0.35, 0.65),
}
STATURE_RANGE_M = (1.50, 1.95)
MAX_SHAPE_DRAWS = 200

# Regressor-like noise (see the module docstring).
CHAIN_NOISE_DEG = (5.0, 20.0)
STANDING_LEG_NOISE_DEG = (5.0, 10.0)
ROOT_TILT_NOISE_DEG = (1.0, 3.0)
OPENING_RANGE_M = (0.10, 0.60)
MAX_JOINT_NOISE_DEG = 45.0
ROOT_SHIFT_M = 0.03  # horizontal, per axis (standard deviation, clipped at twice)
ROOT_LIFT_M = 0.01  # vertical
MAX_INITIAL_PENETRATION_M = 0.005
MAX_INITIAL_BELOW_FLOOR_M = 0.01
MAX_NOISE_DRAWS = 8
NOISE_DIRECTIONS = 4
BISECTION_STEPS = 10
TARGET_TOLERANCE_M = 0.05

# Ground-truth construction: the generator's own settings, every one spelled out (never the
# engine's defaults, so a change of those does not change the scenes). Three stages of Adam
# with falling learning rates, every iteration run (no early stop: a ground truth must make
# its contacts fully), joint limits held hard, a weak pull to the seed pose, the roots free.
#
# GT_REACH makes the contacts (and holds the free feet on the floor) with the
# interpenetration term on, so a hand comes to rest on the surface it reaches rather than in
# it. GT_THROUGH is the same without that term, for the poses whose way passes through the
# other body (a hugging arm from the A-pose); GT_REPAIR then holds the contacts harder while
# a strong interpenetration term, counting every self-penetration too, pushes sunk-in
# surfaces back out. See solve_ground_truth for the order they are tried in.
_GT_WEIGHTS = StageWeights(
    contact=(3000.0,) * 3,
    stay_close=(2.0,) * 3,
    joint_limits=(1e5,) * 3,
    penetration=(10000.0,) * 3,
    shape_prior=(0.0,) * 3,
    keypoints_2d=(0.0,) * 3,
)
GT_REACH = OptimizerConfig(
    weights=_GT_WEIGHTS,
    learning_rates=(0.02, 0.006, 0.002),
    adam_betas=(0.5, 0.9),
    max_iterations=(80, 60, 40),
    optimize_shape=(False,) * 3,
    early_stop_window=20,
    early_stop_slope=math.inf,
    seed=0,
    progress_every=10,
    rotation_scale=(0.25,) * 3,
    stiffness_step_scaling=False,
    translation_scale=0.25,
    penetration_refresh=(2,) * 3,
    penetration_refresh_motion_m=0.01,
    hold_rest_orientations=True,
    early_stop_relative_slope=(3e-4,) * 3,
)
GT_THROUGH = replace(GT_REACH, weights=replace(_GT_WEIGHTS, penetration=(0.0,) * 3))
GT_REPAIR = replace(
    GT_REACH,
    weights=StageWeights(
        contact=(10000.0,) * 2,
        stay_close=(2.0,) * 2,
        joint_limits=(1e5,) * 2,
        penetration=(75000.0,) * 2,
        shape_prior=(0.0,) * 2,
        keypoints_2d=(0.0,) * 2,
    ),
    learning_rates=(0.005, 0.002),
    max_iterations=(60, 40),
    optimize_shape=(False,) * 2,
    rotation_scale=(0.25,) * 2,
    penetration_refresh=(2,) * 2,
    early_stop_relative_slope=(3e-4,) * 2,
)


@dataclass(frozen=True)
class Scene:
    """A generated scene. ``contacts``: ground-truth (person_a, region_a, person_b,
    region_b) with the engine's region names ("ground" for the floor z = 0); ``answers``: 20
    LMM answer texts; ``info``: how it was built (attempt, noise, figures of the ground truth
    and the initial pose, build time)."""

    seed: int
    contact_type: str
    num_people: int
    side: str  # "right" or "left": the side the recipe was drawn for ("" when unsided)
    shapes: torch.Tensor  # (N, 6) Anny phenotypes
    placement: tuple[tuple[float, float, float], ...]  # per person (x, y, yaw degrees)
    contacts: tuple[Contact, ...]
    ground_truth: PeopleState
    initial: PeopleState
    answers: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------- context

class SynthContext:
    """The Anny body and its regions, loaded once per process."""

    _shared: "SynthContext | None" = None

    def __init__(self, body=None, regions=None):
        if body is None:
            from engine.body import load_body

            body = load_body("anny")
        if regions is None:
            from engine.body.region_map import body_regions

            regions = body_regions(body)
        self.body = body
        self.regions = regions

    @classmethod
    def shared(cls) -> "SynthContext":
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared


def contact_type_of(seed: int) -> ContactType:
    return CONTACT_TYPES[seed % NUM_TYPES]


def _rng(seed: int, attempt: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, attempt, stream])


# ----------------------------------------------------------------------------------- recipe

def statures(body, shapes: torch.Tensor) -> torch.Tensor:
    """(N,) rest-pose heights (top of the head above the soles), metres."""
    with torch.no_grad():
        rest = body.rest_vertices(shapes.to(torch.float32))
    return rest[..., 2].amax(dim=1) - rest[..., 2].amin(dim=1)


def draw_shapes(body, kind: ContactType, rng: np.random.Generator) -> torch.Tensor:
    """(N, 6) phenotypes within SHAPE_BOUNDS, drawn again (up to MAX_SHAPE_DRAWS times)
    until every stature is within STATURE_RANGE_M and the type's stature gap holds."""
    names = tuple(SHAPE_BOUNDS)
    for _ in range(MAX_SHAPE_DRAWS):
        shapes = torch.tensor(
            [[rng.uniform(*SHAPE_BOUNDS[name]) for name in names] for _ in range(kind.num_people)], dtype=torch.float32
        )
        heights = statures(body, shapes)
        if not all(STATURE_RANGE_M[0] <= float(h) <= STATURE_RANGE_M[1] for h in heights):
            continue
        if kind.stature_gap is not None and not kind.stature_gap[0] <= float(heights[1] - heights[0]) <= kind.stature_gap[1]:
            continue
        return shapes
    raise RuntimeError(f"no shape draw fits the statures of {kind.name!r}")


def _mirror_chain(name: str) -> str:
    if name.endswith(".L"):
        return name[:-2] + ".R"
    if name.endswith(".R"):
        return name[:-2] + ".L"
    return name


def _side_recipe(kind: ContactType, side: str, rng: np.random.Generator):
    """Placement, contacts, seed turns and contact chains for ``side`` (the recipe mirrored
    for "left"), the jittered numbers drawn from ``rng``."""
    placement = tuple((draw(x, rng), draw(y, rng), draw(yaw, rng)) for x, y, yaw in kind.placement)
    turns = [(p, joint, tuple(draw(v, rng) for v in degrees)) for p, joint, degrees in kind.seed_turns]
    contacts = kind.contacts
    chains = kind.contact_chains
    if side == "left":
        placement = tuple((-x, y, -yaw) for x, y, yaw in placement)
        turns = [(p, *mirror_turn(joint, degrees)) for p, joint, degrees in turns]
        contacts = tuple((a, mirror_region(ra), b, mirror_region(rb)) for a, ra, b, rb in contacts)
        chains = tuple((p, _mirror_chain(chain)) for p, chain in chains)
    lowering = draw(kind.seed_root_lowering, rng)
    return placement, contacts, turns, chains, lowering


def standing_feet(contacts: tuple[Contact, ...], num_people: int) -> tuple[tuple[int, str], ...]:
    """(person, foot) of every foot the contacts leave free: it stands on the floor."""
    used = {(a, ra) for a, ra, _, _ in contacts} | {(b, rb) for _, _, b, rb in contacts}
    return tuple((p, foot) for p in range(num_people) for foot in ("left_foot", "right_foot") if (p, foot) not in used)


def ground_truth_objective(contacts: tuple[Contact, ...], num_people: int) -> ContactObjective:
    """The contacts as artist terms (plain distances, every one required), plus each free foot
    on the floor."""
    terms = []
    for a, ra, b, rb in contacts:
        pair = RegionPair(a, ra, a if rb == GROUND else b, rb)
        terms.append(ContactTerm(options=(((pair,),),), weight=1.0, source="artist", label=pair.label()))
    for person, foot in standing_feet(contacts, num_people):
        pair = RegionPair(person, foot, person, GROUND)
        terms.append(ContactTerm(options=(((pair,),),), weight=1.0, source="artist", label=f"{foot} on the floor"))
    return ContactObjective(tuple(terms))


def fibonacci_directions(count: int) -> np.ndarray:
    """(count, 3) unit vectors spread evenly over the sphere."""
    i = np.arange(count) + 0.5
    z = 1.0 - 2.0 * i / count
    r = np.sqrt(1.0 - z * z)
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


class GroundTruthRegions:
    """The regions as the ground-truth optimization sees them: a region on the floor on its
    subsample plus its *extreme* vertices (the farthest in each of FLOOR_DIRECTIONS
    directions at rest), every other region on its subsample, as in the engine.

    Why the extreme vertices: a floor contact is measured as the height of the region's
    lowest vertex of the full set, which is always a vertex of the region's convex hull; the
    hand and the foot move nearly rigidly (fingers and toes are frozen), so the lowest vertex
    in any pose is one of the vertices extreme at rest in some direction. The full set (1000 to
    1600 vertices) would be exact too, but the engine's contact loss pads every pair to the
    largest region and multiplies K x K matrices even for ground pairs: 30 ms a step."""

    FLOOR_DIRECTIONS = 400

    def __init__(self, regions, on_floor: set[str], rest_vertices: np.ndarray):
        self.regions = regions
        self.on_floor = on_floor
        self._floor_sets: dict[str, np.ndarray] = {}
        directions = fibonacci_directions(self.FLOOR_DIRECTIONS)
        for region in on_floor:
            ids = np.asarray(regions.vertex_ids(region), dtype=np.int64)
            extreme = ids[np.unique(np.argmax(rest_vertices[ids] @ directions.T, axis=0))]
            self._floor_sets[region] = np.union1d(extreme, regions.subsample(region))

    def subsample(self, region: str) -> np.ndarray:
        return self._floor_sets[region] if region in self._floor_sets else self.regions.subsample(region)

    def vertex_ids(self, region: str) -> np.ndarray:
        return self.regions.vertex_ids(region)


@dataclass(frozen=True)
class GroundTruthCheck:
    contact_m: float  # largest ground-truth contact distance (full region vertex sets)
    feet_m: float  # largest distance of a free foot from the floor
    penetration_m: float  # engine.synth.poses.penetration_depth

    @property
    def accepted(self) -> bool:
        return max(self.contact_m, self.feet_m) <= MAX_GT_CONTACT_M and self.penetration_m <= MAX_GT_PENETRATION_M

    def text(self) -> str:
        return (f"contact {1000 * self.contact_m:.1f} mm, free feet {1000 * self.feet_m:.1f} mm, "
                f"penetration {1000 * self.penetration_m:.1f} mm")


def check_ground_truth(body, regions, state: PeopleState, contacts: tuple[Contact, ...]) -> GroundTruthCheck:
    vertices, _ = posed_vertices(body, state)
    feet = tuple((p, foot, p, GROUND) for p, foot in standing_feet(contacts, state.shape.shape[0]))
    return GroundTruthCheck(
        contact_m=max(contact_distances(regions, contacts, vertices)),
        feet_m=max(contact_distances(regions, feet, vertices), default=0.0),
        penetration_m=penetration_depth(body, regions, contacts, vertices),
    )


def solve_ground_truth(body, regions, start: PeopleState, contacts: tuple[Contact, ...]) -> tuple[PeopleState, GroundTruthCheck, str]:
    """The ground truth from the seed pose, the first of these that passes the check (else
    the last one, with its check):

    1. GT_REACH (contacts made with the interpenetration term on, self-penetration counted
       beyond the seed pose's);
    2. its result repaired (GT_REPAIR, every penetration counted);
    3. GT_THROUGH (no interpenetration term: the way may pass through the other body), then
       GT_REPAIR.

    Returns the state, its check and which path gave it ("reach", "reach+repair",
    "through+repair")."""
    num_people = start.local_rotations.shape[0]
    objective = ground_truth_objective(contacts, num_people)
    on_floor = {ra for _, ra, _, rb in contacts if rb == GROUND} | {f for _, f in standing_feet(contacts, num_people)}
    statics = BodyStatics(body, start.shape[0])
    gt_regions = GroundTruthRegions(regions, on_floor, statics.rest_vertices)
    people = [PersonOptions()] * num_people

    def repair(state: PeopleState) -> PeopleState:
        problem = build_problem(statics, gt_regions, objective, state, people, floor_height=FLOOR, self_allowance=False)
        return refine(problem, GT_REPAIR).state

    problem = build_problem(statics, gt_regions, objective, start, people, floor_height=FLOOR)
    reached = refine(problem, GT_REACH).state
    check = check_ground_truth(body, regions, reached, contacts)
    if check.accepted:
        return reached, check, "reach"
    repaired = repair(reached)
    check = check_ground_truth(body, regions, repaired, contacts)
    if check.accepted:
        return repaired, check, "reach+repair"
    problem = build_problem(statics, gt_regions, objective, start, people, floor_height=FLOOR, penetration=False)
    through = repair(refine(problem, GT_THROUGH).state)
    return through, check_ground_truth(body, regions, through, contacts), "through+repair"


# ----------------------------------------------------------------------------------- noise

def _chain_rotations(body, chain: tuple[str, ...], magnitude_deg: float, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Random rotation vectors (radians) for a chain's joints whose root-sum-square is
    ``magnitude_deg``."""
    vectors = rng.standard_normal((len(chain), 3))
    vectors *= math.radians(magnitude_deg) / max(np.linalg.norm(vectors), 1e-9)
    return {body.joint_names.index(j): v for j, v in zip(chain, vectors)}


def _apply_noise(state: PeopleState, noise: np.ndarray) -> PeopleState:
    rotations = state.local_rotations @ axis_angle_to_matrix(torch.tensor(noise, dtype=torch.float32))
    return PeopleState(rotations, state.root_translation.clone(), state.shape.clone())


def _ground_feet(body, regions, state: PeopleState, feet: dict[int, list[str]]) -> PeopleState:
    """Each person's root moved up or down so that their floor feet's lowest vertex is on the
    floor (people with no foot on the floor are left as they are)."""
    vertices, _ = posed_vertices(body, state)
    translation = state.root_translation.clone()
    for person, names in feet.items():
        if not names:
            continue
        ids = torch.as_tensor(np.concatenate([regions.vertex_ids(f) for f in names]))
        translation[person, 2] += FLOOR - float(vertices[person, ids, 2].min())
    return PeopleState(state.local_rotations, translation, state.shape)


def perturb(body, regions, gt: PeopleState, contacts: tuple[Contact, ...], chains: tuple[tuple[int, str], ...],
            rng: np.random.Generator) -> tuple[PeopleState, dict[str, Any]]:
    """The initial pose (see the module docstring) and a record of the noise drawn.

    One draw: the base noise (every chain, the global orientation, the root shift), then
    NOISE_DIRECTIONS random directions of extra noise on the contact chains, of which the one
    that opens the contacts most at full scale is kept and scaled by bisection to the target
    opening. A draw is valid when the opening is within OPENING_RANGE_M, the penetration at
    most MAX_INITIAL_PENETRATION_M and the body at most MAX_INITIAL_BELOW_FLOOR_M below the
    floor (before the root shift); the first valid draw within TARGET_TOLERANCE_M of the
    target is taken, else the valid draw closest to it after MAX_NOISE_DRAWS draws."""
    from engine.refine.losses.joint_data import optimized_joint_mask

    n, j = gt.local_rotations.shape[:2]
    optimizable = np.asarray(optimized_joint_mask(body.kind, body.joint_names), dtype=bool)
    free_feet = standing_feet(contacts, n)
    floor_feet: dict[int, list[str]] = {p: [] for p in range(n)}
    for p, foot in free_feet:
        floor_feet[p].append(foot)
    for a, ra, _, rb in contacts:
        if rb == GROUND and ra.endswith("_foot"):
            floor_feet[a].append(ra)
    target = float(rng.uniform(*OPENING_RANGE_M))
    chain_joints = [(p, body.joint_names.index(jn)) for p, name in chains for jn in ANNY_CHAINS[name]]
    shift_scale = np.array([ROOT_SHIFT_M, ROOT_SHIFT_M, ROOT_LIFT_M])

    def state_for(noise: np.ndarray) -> PeopleState:
        return _ground_feet(body, regions, _apply_noise(gt, noise * optimizable[None, :, None]), floor_feet)

    def opening(state: PeopleState) -> tuple[float, torch.Tensor]:
        vertices, _ = posed_vertices(body, state)
        return max(contact_distances(regions, contacts, vertices)), vertices

    best: tuple[float, PeopleState, dict] | None = None
    for draw_index in range(MAX_NOISE_DRAWS):
        base = np.zeros((n, j, 3))
        for p in range(n):
            for name, chain in ANNY_CHAINS.items():
                standing = name.startswith("leg.") and (p, "left_foot" if name.endswith("L") else "right_foot") in free_feet
                bounds = STANDING_LEG_NOISE_DEG if standing and (p, name) not in chains else CHAIN_NOISE_DEG
                for joint, vector in _chain_rotations(body, chain, rng.uniform(*bounds), rng).items():
                    base[p, joint] = vector
            tilt = rng.standard_normal(3)
            base[p, 0] = tilt / np.linalg.norm(tilt) * math.radians(rng.uniform(*ROOT_TILT_NOISE_DEG))
        shift = torch.tensor(np.clip(rng.standard_normal((n, 3)) * shift_scale, -2 * shift_scale, 2 * shift_scale),
                             dtype=torch.float32)
        directions = []
        for _ in range(NOISE_DIRECTIONS):
            direction = np.zeros((n, j, 3))
            for p, joint in chain_joints:
                direction[p, joint] = rng.standard_normal(3)
            # At scale 1 the largest joint turn of the extra noise is MAX_JOINT_NOISE_DEG.
            largest = max(np.linalg.norm(direction[p, joint]) for p, joint in chain_joints)
            directions.append(direction * math.radians(MAX_JOINT_NOISE_DEG) / largest)
        full = [opening(state_for(base + d))[0] for d in directions]
        direction = directions[int(np.argmax(full))]
        scale = 1.0
        if max(full) > target:
            low, high = 0.0, 1.0
            for _ in range(BISECTION_STEPS):
                middle = 0.5 * (low + high)
                if opening(state_for(base + direction * middle))[0] < target:
                    low = middle
                else:
                    high = middle
            scale = high
        unshifted = state_for(base + direction * scale)
        # The body's lowest point before the root shift (which may lower it by up to
        # 2 ROOT_LIFT_M): a hand pushed through the floor is no regressor's error.
        sunk = below_floor(posed_vertices(body, unshifted)[0])
        state = PeopleState(unshifted.local_rotations, unshifted.root_translation + shift, unshifted.shape)
        opened, vertices = opening(state)
        if not (OPENING_RANGE_M[0] <= opened <= OPENING_RANGE_M[1]) or sunk > MAX_INITIAL_BELOW_FLOOR_M:
            continue
        depth = penetration_depth(body, regions, contacts, vertices)
        if depth > MAX_INITIAL_PENETRATION_M:
            continue
        record = {
            "target_opening_m": target, "opening_m": opened, "extra_scale": scale, "noise_draw": draw_index,
            "penetration_m": depth, "below_floor_m": sunk,
        }
        if abs(opened - target) <= TARGET_TOLERANCE_M:
            return state, record
        if best is None or abs(opened - target) < abs(best[0] - target):
            best = (opened, state, record)
    if best is not None:
        return best[1], best[2]
    raise RuntimeError(f"none of {MAX_NOISE_DRAWS} noise draws opened the contact without penetration")


# ----------------------------------------------------------------------------------- building

def build_scene(seed: int, context: SynthContext | None = None) -> Scene:
    """Build the scene of ``seed`` afresh (no cache); see the module docstring. Runs with one
    torch thread (restored after): parallel reductions may round differently, and on a busy
    machine threads that wait for each other make an optimization many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _build_scene(seed, context or SynthContext.shared())
    finally:
        torch.set_num_threads(threads)


def _build_scene(seed: int, context: SynthContext) -> Scene:
    body, regions = context.body, context.regions
    kind = contact_type_of(seed)
    started = time.perf_counter()
    rejected: list[str] = []
    for attempt in range(MAX_ATTEMPTS):
        recipe_rng = _rng(seed, attempt, 0)
        side = ("right" if recipe_rng.random() < 0.5 else "left") if kind.sided else ""
        shapes = draw_shapes(body, kind, recipe_rng)
        placement, contacts, turns, chains, lowering = _side_recipe(kind, side or "right", recipe_rng)
        placed = placement_state(body, placement, shapes)
        lowered = PeopleState(placed.local_rotations, placed.root_translation - torch.tensor([0.0, 0.0, lowering]), placed.shape)
        start = turn_joints(body, lowered, turns, [yaw for _, _, yaw in placement])
        gt_started = time.perf_counter()
        gt, check, path = solve_ground_truth(body, regions, start, contacts)
        gt_time = time.perf_counter() - gt_started
        if not check.accepted:
            rejected.append(f"attempt {attempt}: {check.text()}")
            continue
        try:
            initial, noise = perturb(body, regions, gt, contacts, chains, _rng(seed, attempt, 1))
        except RuntimeError as error:
            rejected.append(f"attempt {attempt}: {error}")
            continue
        answers = answer_texts(kind, contacts, _rng(seed, attempt, 2))
        info = {
            "attempt": attempt,
            "rejected": rejected,
            "gt_path": path,
            "gt_contact_m": check.contact_m,
            "gt_feet_m": check.feet_m,
            "gt_penetration_m": check.penetration_m,
            "gt_below_floor_m": below_floor(posed_vertices(body, gt)[0]),
            "gt_time_s": gt_time,
            "build_time_s": time.perf_counter() - started,
            "noise": noise,
            "generator_version": GENERATOR_VERSION,
        }
        return Scene(
            seed=seed, contact_type=kind.name, num_people=kind.num_people, side=side, shapes=shapes,
            placement=placement, contacts=contacts, ground_truth=gt, initial=initial, answers=answers, info=info,
        )
    raise RuntimeError(f"seed {seed} ({kind.name}): no ground truth in {MAX_ATTEMPTS} attempts: {'; '.join(rejected)}")


# ----------------------------------------------------------------------------------- job

def scene_job(scene: Scene, joint_names: tuple[str, ...], samples) -> "Job":
    """The refinement job a user would write for ``scene``: its initial poses (a quaternion
    per joint, the shape, the root translation) and the parsed samples of its answers
    (``engine.lmm.parser.parse_response``), every option and constraint setting left at the
    engine's default but the floor, which is the scene's (z = 0), as the add-on passes its
    scene's floor. Why: the initial root is off by up to 2 cm vertically like a regressor's,
    and the engine's default floor (the lowest foot point of the initial pose) would put
    every hand that must rest on the ground that far from it. Passed through JSON and back,
    as ``python -m engine refine job.json`` reads it."""
    from engine.refine.job import BodySpec, ConstraintSpec, FramePoses, Job, JobOptions, PersonPose, PersonSettings
    from engine.refine.losses.geometry import matrix_to_quaternion

    quaternions = matrix_to_quaternion(scene.initial.local_rotations)
    people = tuple(
        PersonPose(
            shape=tuple(float(v) for v in scene.initial.shape[p]),
            rotations={name: tuple(float(v) for v in quaternions[p, j]) for j, name in enumerate(joint_names)},
            root_translation=tuple(float(v) for v in scene.initial.root_translation[p]),
        )
        for p in range(scene.num_people)
    )
    job = Job(
        options=JobOptions(floor_height=FLOOR),
        body=BodySpec(kind="anny"),
        people=tuple(PersonSettings(name=f"Person {p + 1}") for p in range(scene.num_people)),
        frames=(FramePoses(frame=1, people=people),),
        constraints=ConstraintSpec(lmm_samples=tuple(sample.to_dict() for sample in samples)),
    )
    return Job.from_dict(json.loads(json.dumps(job.to_dict())))


# ----------------------------------------------------------------------------------- cache

def body_key(body) -> str:
    """A short hash naming the body by kind, package version, topology and region rules
    (integers and names only: Anny's float data differs in the last bits between machines)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(np.asarray(body.faces, dtype=np.int64)).tobytes())
    ident = [body.kind, getattr(body, "anny_version", None), body.num_vertices, list(body.joint_names), list(body.parents),
             digest.hexdigest(), REGION_RULES_VERSION]
    return hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:12]


def scene_path(seed: int, body, folder: Path | None = None) -> Path:
    folder = folder or cache_dir() / "synth"
    return folder / f"v{GENERATOR_VERSION}-{body_key(body)}-seed{seed}.pt"


def _state_dict(state: PeopleState) -> dict[str, torch.Tensor]:
    return {"local_rotations": state.local_rotations, "root_translation": state.root_translation, "shape": state.shape}


def save_scene(path: Path, scene: Scene) -> None:
    meta = {
        "seed": scene.seed, "contact_type": scene.contact_type, "num_people": scene.num_people, "side": scene.side,
        "placement": [list(p) for p in scene.placement], "contacts": [list(c) for c in scene.contacts],
        "answers": list(scene.answers), "info": scene.info,
    }
    data = {
        "meta": json.dumps(meta), "shapes": scene.shapes,
        "ground_truth": _state_dict(scene.ground_truth), "initial": _state_dict(scene.initial),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as stream:
        torch.save(data, stream)


def load_scene(path: Path) -> Scene | None:
    """The stored scene, or None when absent or unreadable (then it is built again)."""
    try:
        data = torch.load(path, weights_only=True)
        meta = json.loads(data["meta"])
        return Scene(
            seed=int(meta["seed"]), contact_type=meta["contact_type"], num_people=int(meta["num_people"]), side=meta["side"],
            shapes=data["shapes"], placement=tuple(tuple(p) for p in meta["placement"]),
            contacts=tuple((int(a), ra, int(b), rb) for a, ra, b, rb in meta["contacts"]),
            ground_truth=PeopleState(**data["ground_truth"]), initial=PeopleState(**data["initial"]),
            answers=tuple(meta["answers"]), info=meta["info"],
        )
    except Exception:
        return None


def generate_scene(seed: int, *, context: SynthContext | None = None, cache: bool = True, folder: Path | None = None) -> Scene:
    """The scene of ``seed``: from the cache when built before, else built (and cached).
    ``scene.info["source"]`` says which ("cache" or "built")."""
    context = context or SynthContext.shared()
    path = scene_path(seed, context.body, folder)
    if cache:
        stored = load_scene(path)
        if stored is not None and stored.seed == seed:
            stored.info["source"] = "cache"
            return stored
    scene = build_scene(seed, context)
    if cache:
        try:
            save_scene(path, scene)
        except OSError:
            pass  # a read-only cache costs a rebuild next time, nothing else
    scene.info["source"] = "built"
    return scene
