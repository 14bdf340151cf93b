"""Build a :class:`~engine.refine.optimizer.RefineProblem` from a body, its regions, a contact
objective and the people's initial parameters: which vertices to skin, the contact index
tensors, the stay-close weights, joint limits, capsules and keypoints."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch

from engine.body.base import BodyModel
from engine.refine.losses.contact import TOUCH_M, RegionVertices, build_contact_index, needed_contact_vertices
from engine.refine.losses.joint_data import SHAPE_UNIT, STAY_CLOSE_RIG_SCALE, joint_limit_radians, optimized_joint_mask
from engine.refine.losses.penetration import (
    build_penetration_setup,
    build_surface_setup,
    Capsules,
    fit_capsules,
    initial_self_allowance,
    initial_surface_self_allowance,
    proxy_bones,
)
from engine.refine.metrics import vertex_normals
from engine.refine.losses.terms import KeypointSetup, LossSetup
from engine.contacts.objective import ContactObjective, ContactTerm
from engine.body.regions import GROUND, composite_members, region_name, split_region
from engine.refine.optimizer import PeopleState, RefineProblem

ROOT_TRANSLATION = "root_translation"
GLOBAL_ORIENTATION = "global_orientation"
# About this many vertices of each body are tested for interpenetration, plus every
# vertex of the contact regions' subsamples. 1500, not 600: at 600 (every 22nd vertex) the
# fingers of a hand resting on a shoulder curled 2-3 cm into the chest between tested
# vertices (held-out tuning scenes: penetration within 1 cm in 32 of 42 scenes at 600, 37 at
# 1500, the two-person optimize time unchanged within the machine's noise).
PENETRATION_VERTICES = 1500
# Multiplier of the stay-close weight on the root's global orientation: like the translation,
# it anchors the body when there are no 2D keypoints.
GLOBAL_ORIENTATION_WEIGHT = 1000.0
# Saturation scale of the LMM's contact rows (engine.refine.losses.contact, "Robust LMM rows"): a
# regressor leaves a true contact open by a few centimetres to a few decimetres, which still
# pulls with 35-90% of full force up to 20 cm; a wrong row 60 cm or more from satisfied pulls
# with under 5%. At 0.1 m a 21 cm gap pulled with 12% and stayed open. Far-off limbs reach
# their contact because their own stay-close weight is relaxed (CONTACT_LIMB_STAY_CLOSE), not
# by a stronger pull: on the held-out tuning scenes 1 m restored as many (25 of 42) but moved
# more limbs the wrong way (vertex error lower in 34 of 42 scenes against 36 at 0.2 m).
LMM_SATURATION_M = 0.2
# A foot's subsample vertices at most this high above the floor in the initial pose make it a
# planted foot (see planted_feet).
PLANTED_HEIGHT_M = 0.02
# Per-joint stiffness of the stay-close term by how much of the body a joint carries: the
# multiplier is the share of skinning weight in the joint's subtree divided by this share
# (at least 1). On Anny a hand, forearm, upper arm or leg keeps the base weight (about 1-1.3),
# the head about 3, the spine about 6, the root is held by GLOBAL_ORIENTATION_WEIGHT. Why: a
# rotation near the trunk moves everything below it (the head, the other arm, the partner
# when the contact pulls), and a pose regressor is least sure of the extremities, so a
# contact must be reached by the limb that makes it, not by bending the spine.
SUBTREE_SHARE_UNIT = 0.12


def _subtree_share(skinning_weights: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    """(J,) share of the body's skinning weight in each joint's subtree."""
    share = np.asarray(skinning_weights, dtype=np.float64).sum(0)
    share = share / share.sum()
    subtree = share.copy()
    # Children come after their parents in a kinematic tree's joint order: sum leaves first.
    for joint in range(len(parents) - 1, -1, -1):
        if parents[joint] >= 0:
            subtree[parents[joint]] += subtree[joint]
    return subtree


def subtree_stiffness(skinning_weights: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    """(V, J) skinning weights -> (J,) stay-close multipliers (see SUBTREE_SHARE_UNIT)."""
    return np.maximum(1.0, _subtree_share(skinning_weights, parents) / SUBTREE_SHARE_UNIT)


def supporting_stiffness(skinning_weights: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    """(J,) the stay-close multiplier of each joint when the body stands on the far end of its
    subtree (a leg whose foot is planted): it then carries everything *outside* its subtree,
    so by the rule of SUBTREE_SHARE_UNIT its multiplier is that share over the unit (a hip or
    knee of a standing leg about as stiff as the spine)."""
    return np.maximum(1.0, (1.0 - _subtree_share(skinning_weights, parents)) / SUBTREE_SHARE_UNIT)


@dataclass(frozen=True)
class PersonOptions:
    """movable: may this person change at all; pinned_joints: joints held fixed;
    joint_weights: stay-close multipliers by joint name, or "root_translation" /
    "global_orientation"."""

    movable: bool = True
    pinned_joints: tuple[str, ...] = ()
    joint_weights: dict[str, float] | None = None


@dataclass(frozen=True)
class Keypoints:
    """targets: (N, J, 2) pixels; confidence: (N, J); camera as in engine.refine.job.Camera."""

    targets: torch.Tensor
    confidence: torch.Tensor
    world_to_camera: torch.Tensor
    focal: torch.Tensor
    principal: torch.Tensor


class BodyStatics:
    """What depends only on the body (and is reused across frames): capsules, limits,
    optimized joints, the penetration vertex sample."""

    def __init__(self, body: BodyModel, shape: torch.Tensor):
        self.body = body
        self.shape = shape.detach().clone()
        names = body.joint_names
        self.optimizable = torch.tensor(optimized_joint_mask(body.kind, names), dtype=torch.bool)
        self.joint_limits = torch.tensor(joint_limit_radians(body.kind, names), dtype=torch.float32)
        with torch.no_grad():
            self.rest_vertices = body.rest_vertices(shape[None])[0].numpy()
            rest_frames = body.rest_joint_frames(shape[None])[0].numpy()
        self.rest_frames = rest_frames
        self.rest_normals = vertex_normals(self.rest_vertices, np.asarray(body.faces)).astype(np.float32)
        self.skinning = body.skinning_weights()
        self.stiffness = torch.tensor(subtree_stiffness(self.skinning, body.parents), dtype=torch.float32)
        self.supporting_stiffness = torch.tensor(supporting_stiffness(self.skinning, body.parents), dtype=torch.float32)
        bones = [j for j in range(len(names)) if bool(self.optimizable[j])]
        self.capsule_bones = bones
        self.capsules = fit_capsules(self.rest_vertices, self.skinning, rest_frames, body.parents, bones)
        self._shape_capsules: dict[bytes, Capsules] = {}
        stride = max(1, body.num_vertices // PENETRATION_VERTICES)
        self.penetration_sample = np.arange(0, body.num_vertices, stride, dtype=np.int64)

    def capsules_for(self, shapes: torch.Tensor) -> Capsules:
        """The capsules of people of these shapes (N, S): this body's own where they all have
        its shape, else each person's fitted to their own rest body (kept per shape: a job
        builds a problem for every frame). Why: with the first person's capsules on a partner
        of another build, the partner's capsule radii were up to 19 mm off (8 two-person
        tuning scenes), a false or missed penetration of as much."""
        fitted = [self._capsules_of(shape) for shape in shapes]
        if all(capsules is self.capsules for capsules in fitted):
            return self.capsules
        return Capsules.stack_people(fitted)

    def _capsules_of(self, shape: torch.Tensor) -> Capsules:
        if torch.equal(shape, self.shape):
            return self.capsules
        key = shape.detach().numpy().tobytes()
        if key not in self._shape_capsules:
            with torch.no_grad():
                rest_vertices = self.body.rest_vertices(shape[None])[0].numpy()
                rest_frames = self.body.rest_joint_frames(shape[None])[0].numpy()
            self._shape_capsules[key] = fit_capsules(rest_vertices, self.skinning, rest_frames, self.body.parents, self.capsule_bones)
        return self._shape_capsules[key]


def contact_capsule_exemptions(
    objective: ContactObjective, regions, statics: BodyStatics, tested: np.ndarray, capsule_bones: Sequence[int]
) -> np.ndarray:
    """(M, C) bool: the tested vertices of one region of a contact pair against the capsules of
    the bones that carry the pair's other region (both ways).

    Why: a capsule's rounded end reaches past its bone into the neighbouring region (the upper
    arm's into the shoulder), so a hand that must rest on the shoulder meets the upper arm's
    capsule first and stops centimetres short. For these pairs the mesh surface test alone
    guards against sinking in; every other capsule still holds."""
    body = statics.body
    dominant = proxy_bones(statics.skinning.argmax(1), body.parents, capsule_bones)
    column = {bone: i for i, bone in enumerate(capsule_bones)}
    exempt = np.zeros((len(tested), len(capsule_bones)), dtype=bool)
    position = {int(v): i for i, v in enumerate(tested)}

    def rows_of(region: str) -> list[int]:
        return [position[int(v)] for v in regions.vertex_ids(region) if int(v) in position]

    def columns_of(region: str) -> list[int]:
        return sorted({column[int(b)] for b in np.unique(dominant[regions.vertex_ids(region)]) if int(b) in column})

    for pair in objective.pairs():
        if pair.is_ground:
            continue
        for near, far in ((pair.region_a, pair.region_b), (pair.region_b, pair.region_a)):
            rows, columns = rows_of(near), columns_of(far)
            if rows and columns:
                exempt[np.ix_(rows, columns)] = True
    return exempt


def planted_feet(
    body: BodyModel,
    regions: RegionVertices,
    objective: ContactObjective,
    initial: PeopleState,
    movable: Sequence[bool],
    floor_height: float,
) -> list[tuple[int, np.ndarray]]:
    """(person, mesh vertex ids) of each foot standing on the floor in the initial pose: the
    foot subsample's vertices within PLANTED_HEIGHT_M of the floor (or below it), for the
    people who may move and the feet that no contact term needs to move. A term needs a foot
    when every one of its options has a row whose every alternative pairs that foot with a
    body region (an artist's "left foot on the right thigh"); a foot that only some options
    use (the LMM's unsided "foot on leg" is either foot on the other leg) stays planted, and
    the minimum over options takes the other foot. Ground rows never need a foot to move."""

    def regions_of(pair) -> set[tuple[int, str]]:
        if pair.is_ground:
            return set()
        return {(pair.person_a, m) for m in composite_members(pair.region_a)} | {
            (pair.person_b, m) for m in composite_members(pair.region_b)
        }

    needed: set[tuple[int, str]] = set()
    for term in objective.terms:
        per_option = []
        for option in term.options:
            needs: set[tuple[int, str]] = set()
            for row in option:
                needs |= set.intersection(*(regions_of(pair) for pair in row))
            per_option.append(needs)
        needed |= set.intersection(*per_option)
    feet = [
        (person, region_name("foot", side))
        for person, may_move in enumerate(movable) if may_move
        for side in ("left", "right")
        if (person, region_name("foot", side)) not in needed
    ]
    if not feet:
        return []
    ids = {foot: np.asarray(regions.subsample(foot[1]), dtype=np.int64) for foot in feet}
    every = np.unique(np.concatenate(list(ids.values())))
    with torch.no_grad():
        heights = body.forward(
            initial.local_rotations, initial.root_translation, initial.shape, torch.as_tensor(every)
        ).vertices[..., 2].numpy()  # (N, V')
    planted = []
    for (person, _), vertex_ids in ids.items():
        low = heights[person, np.searchsorted(every, vertex_ids)] <= floor_height + PLANTED_HEIGHT_M
        if low.any():
            planted.append((person, vertex_ids[low]))
    return planted


def standing_leg_joints(statics: BodyStatics, vertex_ids: np.ndarray) -> list[int]:
    """The joints that carry a planted foot: the joints its vertices mostly follow and their
    ancestors, short of the root."""
    parents = statics.body.parents
    chain: set[int] = set()
    for joint in np.unique(statics.skinning[vertex_ids].argmax(1)):
        joint = int(joint)
        while parents[joint] >= 0:
            chain.add(joint)
            joint = parents[joint]
    return sorted(chain)


def _check_joint_names(body: BodyModel, names, where: str) -> None:
    unknown = sorted(set(names) - set(body.joint_names) - {ROOT_TRANSLATION, GLOBAL_ORIENTATION})
    if unknown:
        raise ValueError(
            f"{where}: unknown joint name(s) {unknown} for the {body.kind} body; "
            f"known joints start with {list(body.joint_names[:6])}"
        )


# Stay-close weight multiplier of the joints that carry a limb or the head named by a contact
# (see contact_limb_joints).
CONTACT_LIMB_STAY_CLOSE = 0.25
# Region bases whose chain is relaxed: the limbs and the head, not the trunk or a shoulder a
# contact lands on.
_RELAXED_BASES = frozenset({"hand", "arm", "foot", "leg", "head"})
# The body's extremities: a joint whose subtree holds two of them is trunk.
_EXTREMITIES = ("left_hand", "right_hand", "left_foot", "right_foot", "head")


def contact_limb_joints(statics: BodyStatics, regions: RegionVertices, objective: ContactObjective, num_people: int,
                        head_leans: bool = False) -> list[set[int]]:
    """Per person, the joints of each contact limb (or head): from the bones its region's
    vertices follow up to, not including, the first joint whose subtree holds a second
    extremity (hand, foot or head), i.e. where the limb meets the trunk.

    Why: a regressor leaves the touching limb 10-60 cm off while the rest of the body is
    nearly right; with the limb held as hard as the trunk, the contact pull met the stay-close
    pull half-way (a hand held 20 cm short of the partner's hand, a head 25 cm short of a
    shoulder: held-out tuning scenes). The answers say which limb is wrong: that limb moves
    more freely, every other joint keeps its weight.

    head_leans: a head's chain goes on down the spine to the first joint that carries a leg
    (a head reaches a partner's shoulder by leaning, not by the neck alone). Used only for
    the limb that reaches for a contact still open when stage 1 would stop
    (RefineProblem.must_close_joints): held from the start, the leaning spine cost the
    report set's vertex error; relaxed only while the head is still short of its contact it
    restores the held-out tuning scenes' head on shoulder (0 -> 3 of 3)."""
    parents = statics.body.parents
    dominant = statics.skinning.argmax(1)
    holds: list[set[str]] = [set() for _ in parents]
    for extremity in _EXTREMITIES:
        for bone in np.unique(dominant[regions.subsample(extremity)]):
            joint = int(bone)
            while joint >= 0:
                holds[joint].add(extremity)
                joint = parents[joint]
    relaxed: list[set[int]] = [set() for _ in range(num_people)]
    for pair in objective.pairs():
        for person, region in ((pair.person_a, pair.region_a), (pair.person_b, pair.region_b)):
            if region == GROUND or split_region(composite_members(region)[0])[0] not in _RELAXED_BASES:
                continue
            head = head_leans and split_region(composite_members(region)[0])[0] == "head"
            for bone in np.unique(dominant[regions.subsample(region)]):
                joint = int(bone)
                while joint >= 0 and parents[joint] >= 0 and (
                    len(holds[joint]) <= 1 or (head and not holds[joint] & {"left_foot", "right_foot"})
                ):
                    relaxed[person].add(joint)
                    joint = parents[joint]
    return relaxed

def build_problem(
    statics: BodyStatics,
    regions: RegionVertices,
    objective: ContactObjective,
    initial: PeopleState,
    people: Sequence[PersonOptions],
    floor_height: float = 0.0,
    keypoints: Keypoints | None = None,
    penetration: bool = True,
    self_allowance: bool = True,
) -> RefineProblem:
    """penetration: whether the interpenetration terms are set up at all.
    self_allowance: within one body, count only what sinks deeper than in ``initial`` (the
        artist's own self-contact stays as posed); False counts every self-penetration, for a
        pose that must come out free of it (the benchmark's ground truth)."""
    body = statics.body
    num_people, num_joints = initial.local_rotations.shape[:2]
    if len(people) != num_people:
        raise ValueError(f"{len(people)} person options for {num_people} people")
    contact_vertices = needed_contact_vertices(objective, regions, num_people)
    tested = np.union1d(statics.penetration_sample, np.concatenate(contact_vertices)) if penetration else np.zeros(0, np.int64)
    needed = np.union1d(np.concatenate(contact_vertices), tested).astype(np.int64)
    if len(needed) == 0:
        needed = np.zeros(1, dtype=np.int64)
    index = build_contact_index(objective, regions, [needed] * num_people, lmm_saturation_m=LMM_SATURATION_M, touch_m=TOUCH_M)
    # What the stay-close relaxation watches (OptimizerConfig.open_contact_relax): plain
    # distances, no touch allowance, the limb of each pair that would reach for it.
    must_close_objective = ContactObjective(objective.must_close())
    must_close = build_contact_index(must_close_objective, regions, [needed] * num_people)
    must_close_joints = torch.zeros(len(must_close.pairs), num_people, num_joints, dtype=torch.bool)
    for slot, pair in enumerate(must_close.pairs):
        one_pair = ContactObjective((ContactTerm(options=(((pair,),),), weight=1.0, source="artist", label="pair"),))
        for person, joints in enumerate(contact_limb_joints(statics, regions, one_pair, num_people, head_leans=True)):
            must_close_joints[slot, person, sorted(joints)] = True

    movable_joints = statics.optimizable[None].repeat(num_people, 1).clone()
    rig_scale = STAY_CLOSE_RIG_SCALE.get(body.kind, 1.0)
    stiffness = statics.stiffness[None].repeat(num_people, 1)
    # The contact limbs move more freely (before the standing legs are held: a planted leg that
    # a contact also names stays as stiff as what it carries).
    for person, joints in enumerate(contact_limb_joints(statics, regions, objective, num_people)):
        if joints:
            stiffness[person, sorted(joints)] *= CONTACT_LIMB_STAY_CLOSE
    # A standing leg carries the body: its joints are held as hard as what they carry (see
    # supporting_stiffness). Why: a small turn at the hip swings a planted foot by the whole
    # leg's length, and with a leg as free as an arm a foot reaching up to the other thigh
    # pulled the standing leg off its spot to meet it (the benchmark's foot on thigh: the
    # standing leg drifted 1-2 cm in most noise draws), where a person lifts the free foot.
    for person, ids in planted_feet(body, regions, objective, initial, [o.movable for o in people], floor_height):
        chain = standing_leg_joints(statics, ids)
        stiffness[person, chain] = torch.maximum(stiffness[person, chain], statics.supporting_stiffness[chain])
    joint_weights = rig_scale * stiffness
    joint_weights[:, 0] = GLOBAL_ORIENTATION_WEIGHT
    translation_weights = torch.ones(num_people)
    for p, options in enumerate(people):
        _check_joint_names(body, options.pinned_joints, f"person {p + 1} pinned_joints")
        for name in options.pinned_joints:
            if name == ROOT_TRANSLATION:
                continue  # held exactly through movable_translation below
            else:
                joint = body.parents.index(-1) if name == GLOBAL_ORIENTATION else body.joint_names.index(name)
                movable_joints[p, joint] = False
        for name, weight in (options.joint_weights or {}).items():
            _check_joint_names(body, [name], f"person {p + 1} joint_weights")
            if name == ROOT_TRANSLATION:
                translation_weights[p] = weight
            elif name == GLOBAL_ORIENTATION:
                joint_weights[p, 0] = GLOBAL_ORIENTATION_WEIGHT * weight
            else:
                joint = body.joint_names.index(name)
                joint_weights[p, joint] = rig_scale * float(stiffness[p, joint]) * weight
        if not options.movable:
            movable_joints[p] = False
    movable_people = torch.tensor([o.movable for o in people], dtype=torch.bool)
    pinned_translation = [ROOT_TRANSLATION in o.pinned_joints for o in people]

    penetration_setup = None
    if penetration and len(statics.capsules.bones) > 0:
        penetration_setup = build_penetration_setup(
            statics.capsules_for(initial.shape), statics.rest_vertices, statics.skinning, body.parents, tested, needed
        )
        surface = build_surface_setup(
            statics.rest_vertices, statics.rest_normals, statics.skinning, statics.rest_frames, body.parents, tested, needed,
            statics.capsules.bones.tolist(),
        )
        # The capsule search reuses the surface sample's clusters: both test the same vertices.
        assert torch.equal(surface.slots, penetration_setup.vertex_slots)
        exempt = torch.as_tensor(
            contact_capsule_exemptions(objective, regions, statics, tested, penetration_setup.capsules.bones.tolist())
        )
        penetration_setup = replace(
            penetration_setup,
            surface=surface,
            self_mask=penetration_setup.self_mask & ~exempt,
            other_mask=~exempt,
        )
        if self_allowance:
            needed_ids = torch.as_tensor(needed, dtype=torch.long)
            with torch.no_grad():
                posed = body.forward(initial.local_rotations, initial.root_translation, initial.shape, needed_ids)
            penetration_setup = replace(
                penetration_setup,
                self_allowance=initial_self_allowance(penetration_setup, posed.vertices, posed.joint_frames),
                surface=surface.with_self_allowance(initial_surface_self_allowance(surface, posed.vertices, posed.joint_frames)),
            )
    keypoint_setup = None
    if keypoints is not None:
        keypoint_setup = KeypointSetup(
            targets=keypoints.targets,
            confidence=keypoints.confidence,
            world_to_camera=keypoints.world_to_camera,
            focal=keypoints.focal,
            principal=keypoints.principal,
        )
    setup = LossSetup(
        contact=index,
        floor_height=floor_height,
        joint_weights=joint_weights,
        translation_weights=translation_weights,
        joint_limits=statics.joint_limits,
        initial_shape=initial.shape.detach().clone(),
        shape_unit=SHAPE_UNIT.get(body.kind, 1.0),
        penetration=penetration_setup,
        keypoints=keypoint_setup,
    )
    # A pinned root translation is held exactly, like a pinned joint.
    movable_translation = movable_people & ~torch.tensor(pinned_translation, dtype=torch.bool)
    return RefineProblem(
        body=body,
        initial=initial,
        setup=setup,
        vertex_ids=torch.as_tensor(needed, dtype=torch.long),
        movable_joints=movable_joints,
        movable_people=movable_people,
        movable_translation=movable_translation,
        must_close=must_close,
        must_close_joints=must_close_joints,
    )

