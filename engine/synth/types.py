"""The contact types of the scene generator: who stands where, which regions touch, the hand-set
seed pose the ground-truth optimization starts from, and what a language model says about it.

Every recipe is written for the *right* side (Person 1's right hand, ...); a sided type is
mirrored for the left side when the seed draws it (:func:`engine.synth.poses.mirror_turn`:
joints .L <-> .R, a turn (x, y, z) -> (x, -y, -z), the placement x -> -x and yaw -> -yaw,
regions left_ <-> right_). Turns are in degrees in the person's own frame, see
:func:`engine.synth.poses.turn_joints` (x left, y backward, z up; +x swings a hanging limb
backward, +y swings it to the person's right, +z turns a forward-pointing limb to the left).

Why seed poses: the optimizer finds the contact nearest its start (from the rest pose a hand
reaches a head by crossing the face, a foot "touches" the other leg at the ankle), so each
type starts from a rough version of its pose; the seed draws jitter on every angle and on the
placement, so no two scenes of a type are alike.

Answer words are the prompts' coarse vocabulary (``engine.body.regions``) as Person 1 part,
Person 2 part (one person: part, part). ``answers`` lists ways a correct answer is written
(the first is the plain form; the others use plurals, synonyms the parser knows, or split a
plural into one row per side); ``wrong`` lists the mistakes a model makes on this picture (a
neighbouring part, a plausible but absent contact)."""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from engine.body.regions import GROUND

Turn = tuple[int, str, tuple[float, float, float]]
Rows = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Jittered:
    """A value drawn uniformly in [low, high]."""

    low: float
    high: float

    def draw(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))


def J(centre: float, spread: float) -> Jittered:
    return Jittered(centre - spread, centre + spread)


Number = float | Jittered


def draw(value: Number, rng: np.random.Generator) -> float:
    return value.draw(rng) if isinstance(value, Jittered) else float(value)


@dataclass(frozen=True)
class ContactType:
    name: str
    num_people: int
    # Ground-truth contacts (right-side version): (person_a, region_a, person_b, region_b).
    contacts: tuple[tuple[int, str, int, str], ...]
    # Per person (x, y, yaw degrees); Person 1 stands at the origin facing -y.
    placement: tuple[tuple[Number, Number, Number], ...]
    # Seed turns (person, joint, (x, y, z) degrees), each number possibly jittered.
    seed_turns: tuple[tuple[int, str, tuple[Number, Number, Number]], ...] = ()
    seed_root_lowering: Number = 0.0
    # Kinematic chains (person, chain name of engine.synth.poses.ANNY_CHAINS, right-side
    # version) that make the contact: the regressor-like noise that opens it is put there.
    contact_chains: tuple[tuple[int, str], ...] = ()
    answers: tuple[Rows, ...] = ()
    wrong: tuple[tuple[str, str], ...] = ()
    # Extra rows that are true but not among the contacts (a standing foot on the ground):
    # some answers add them.
    also_true: tuple[tuple[str, str], ...] = ()
    # Reasoning sentences the answers start with (any subset, in order).
    reasoning: tuple[str, ...] = ()
    sided: bool = True
    # (low, high) metres of Person 2's stature minus Person 1's, where the type needs it (a
    # head on a partner's shoulder: the leaning person is shorter).
    stature_gap: tuple[float, float] | None = None

    @property
    def slug(self) -> str:
        return "".join(ch if ch.isalnum() else "-" for ch in self.name).strip("-").replace("--", "-")


TWO = 2
ONE = 1

CONTACT_TYPES: tuple[ContactType, ...] = (
    ContactType(
        "hand on shoulder (front)", TWO,
        contacts=((0, "right_hand", 1, "left_shoulder_front"),),
        placement=((0.0, 0.0, 0.0), (J(0.0, 0.08), J(-0.58, 0.07), J(180.0, 15.0))),
        seed_turns=((0, "upperarm01.R", (J(-40.0, 10.0), 0.0, 0.0)),),
        contact_chains=((0, "arm.R"),),
        answers=((("hand", "shoulder (front)"),), (("hand", "shoulder"),), (("palm", "shoulder"),), (("hand", "collarbone"),)),
        wrong=(("hand", "arm"), ("hand", "neck"), ("hand", "chest")),
        reasoning=(
            "The two people stand facing each other.",
            "Person 1 reaches out with one arm.",
            "Their hand rests on the front of Person 2's shoulder.",
            "No other body parts appear to touch.",
        ),
    ),
    ContactType(
        "hand on shoulder (back)", TWO,
        contacts=((0, "right_hand", 1, "right_shoulder_back"),),
        placement=((0.0, 0.0, 0.0), (J(0.0, 0.06), J(-0.52, 0.06), J(0.0, 15.0))),
        seed_turns=((0, "upperarm01.R", (J(-50.0, 10.0), 0.0, 0.0)),),
        contact_chains=((0, "arm.R"),),
        answers=((("hand", "shoulder (back)"),), (("hand", "shoulder"),), (("palm", "back of the shoulder"),)),
        wrong=(("hand", "back"), ("hand", "neck"), ("hand", "arm")),
        reasoning=(
            "Person 1 stands behind Person 2; both face the same way.",
            "Person 1's arm is raised forward.",
            "The hand lies on the back of Person 2's shoulder.",
        ),
    ),
    ContactType(
        "hand on back", TWO,
        contacts=((0, "right_hand", 1, "back"),),
        placement=((0.0, 0.0, 0.0), (J(-0.42, 0.05), J(-0.2, 0.06), J(0.0, 15.0))),
        seed_turns=((0, "upperarm01.R", (J(-20.0, 10.0), J(15.0, 8.0), 0.0)),),
        contact_chains=((0, "arm.R"),),
        answers=((("hand", "back"),), (("palm", "upper back"),), (("hand", "back"),)),
        wrong=(("hand", "waist (back)"), ("arm", "back"), ("hand", "shoulder (back)")),
        reasoning=(
            "The two people stand side by side, Person 2 a little ahead.",
            "Person 1 reaches behind Person 2.",
            "Person 1's hand is placed on Person 2's upper back.",
        ),
    ),
    ContactType(
        "hand on head (self)", ONE,
        contacts=((0, "right_hand", 0, "head"),),
        placement=((0.0, 0.0, J(0.0, 20.0)),),
        seed_turns=((0, "upperarm01.R", (0.0, J(100.0, 10.0), 0.0)), (0, "lowerarm01.R", (0.0, J(110.0, 10.0), 0.0))),
        contact_chains=((0, "arm.R"),),
        answers=((("hand", "head"),), (("palm", "head"),), (("hand", "hair"),), (("head", "hand"),)),
        wrong=(("hand", "shoulder"), ("arm", "head"), ("hand", "arm")),
        also_true=(("foot", "ground"),),
        reasoning=(
            "The person stands upright.",
            "One arm is raised and bent at the elbow.",
            "The hand rests on top of the head.",
        ),
    ),
    ContactType(
        "handshake", TWO,
        contacts=((0, "right_hand", 1, "right_hand"),),
        placement=((0.0, 0.0, 0.0), (J(0.0, 0.06), J(-0.8, 0.07), J(180.0, 12.0))),
        seed_turns=((0, "upperarm01.R", (J(-30.0, 8.0), 0.0, 0.0)), (1, "upperarm01.R", (J(-30.0, 8.0), 0.0, 0.0))),
        contact_chains=((0, "arm.R"), (1, "arm.R")),
        answers=((("hand", "hand"),), (("palm", "palm"),), (("hand", "hand"),), (("fingers", "hand"),)),
        wrong=(("hand", "arm"), ("arm", "hand"), ("arm", "arm")),
        reasoning=(
            "Two people face each other at arm's length.",
            "They are shaking hands.",
            "Their hands are clasped between them.",
        ),
    ),
    ContactType(
        "holding hands", TWO,
        contacts=((0, "right_hand", 1, "left_hand"),),
        placement=((0.0, 0.0, 0.0), (J(-0.72, 0.06), J(0.0, 0.06), J(0.0, 12.0))),
        seed_turns=((0, "upperarm01.R", (0.0, J(-20.0, 6.0), 0.0)), (1, "upperarm01.L", (0.0, J(20.0, 6.0), 0.0))),
        contact_chains=((0, "arm.R"), (1, "arm.L")),
        answers=((("hand", "hand"),), (("hand", "hand"),), (("palm", "fingers"),)),
        wrong=(("arm", "arm"), ("hand", "arm"), ("arm", "hand")),
        reasoning=(
            "The two people walk or stand side by side.",
            "Their arms hang down between them.",
            "They hold hands.",
        ),
    ),
    ContactType(
        "hands clasped (self)", ONE,
        contacts=((0, "left_hand", 0, "right_hand"),),
        placement=((0.0, 0.0, J(0.0, 20.0)),),
        seed_turns=tuple(
            (0, f"upperarm01.{s}", (J(-25.0, 8.0), 0.0, 0.0)) for s in "LR"
        ) + tuple((0, f"lowerarm01.{s}", (J(-80.0, 10.0), 0.0, 0.0)) for s in "LR")
        + ((0, "upperarm01.L", (0.0, 0.0, J(-25.0, 5.0))), (0, "upperarm01.R", (0.0, 0.0, J(25.0, 5.0)))),
        contact_chains=((0, "arm.L"), (0, "arm.R")),
        answers=((("hand", "hand"),), (("palm", "palm"),), (("fingers", "fingers"),)),
        wrong=(("hand", "arm"), ("arm", "stomach"), ("hand", "stomach")),
        also_true=(("feet", "ground"),),
        reasoning=(
            "The person stands with the forearms raised in front of the body.",
            "The hands meet in front of the chest.",
            "The fingers are interlaced.",
        ),
        sided=False,
    ),
    ContactType(
        "arm around waist", TWO,
        contacts=((0, "right_hand", 1, "waist_back"),),
        placement=((0.0, 0.0, 0.0), (J(-0.4, 0.04), J(-0.25, 0.06), J(0.0, 12.0))),
        seed_turns=((0, "upperarm01.R", (J(-20.0, 5.0), J(15.0, 5.0), 0.0)),),
        contact_chains=((0, "arm.R"),),
        answers=((("hand", "waist (back)"),), (("hand", "lower back"),), (("hand", "waist (back)"),)),
        wrong=(("hand", "back"), ("arm", "back"), ("hand", "butt")),
        reasoning=(
            "The people stand next to each other.",
            "Person 1 has an arm around Person 2.",
            "The hand rests on Person 2's lower back, at the waist.",
        ),
    ),
    ContactType(
        "arm around shoulders", TWO,
        contacts=((0, "right_arm", 1, "back"),),
        placement=((0.0, 0.0, 0.0), (J(-0.32, 0.02), J(-0.18, 0.04), J(0.0, 10.0))),
        seed_turns=((0, "upperarm01.R", (0.0, J(55.0, 5.0), 0.0)), (0, "upperarm01.R", (0.0, 0.0, J(15.0, 5.0))),
                    (0, "lowerarm01.R", (0.0, 0.0, J(90.0, 8.0))), (1, "upperarm01.L", (0.0, J(30.0, 5.0), 0.0))),
        contact_chains=((0, "arm.R"),),
        answers=((("arm", "back"),), (("forearm", "upper back"),), (("arm", "back"),), (("arm", "back, shoulder (back)"),)),
        wrong=(("arm", "neck"), ("hand", "shoulder (front)"), ("hand", "arm")),
        reasoning=(
            "The two people stand side by side, close together.",
            "Person 1's arm is draped around Person 2's shoulders.",
            "The arm lies across Person 2's upper back.",
        ),
        stature_gap=(-0.20, -0.05),
    ),
    ContactType(
        "hug", TWO,
        contacts=((0, "left_hand", 1, "back"), (0, "right_hand", 1, "back")),
        placement=((0.0, 0.0, 0.0), (J(0.0, 0.04), J(-0.42, 0.04), J(180.0, 10.0))),
        # Person 1's arms forward and bent round the partner; Person 2's raised sideways, out
        # of the way (between the partner's arm and trunk a hugging arm got caught).
        seed_turns=((0, "upperarm01.R", (J(-55.0, 8.0), 0.0, 0.0)), (0, "upperarm01.L", (J(-55.0, 8.0), 0.0, 0.0)),
                    (0, "lowerarm01.R", (0.0, 0.0, J(70.0, 10.0))), (0, "lowerarm01.L", (0.0, 0.0, J(-70.0, 10.0))),
                    (1, "upperarm01.R", (J(-15.0, 8.0), J(45.0, 8.0), 0.0)), (1, "upperarm01.L", (J(-15.0, 8.0), J(-45.0, 8.0), 0.0))),
        contact_chains=((0, "arm.L"), (0, "arm.R")),
        answers=((("hands", "back"),), (("hand", "back"), ("hand", "back")), (("palms", "back"),), (("hands", "upper back"),)),
        wrong=(("hand", "waist (back)"), ("chest", "chest"), ("head", "shoulder (front)")),
        reasoning=(
            "The two people face each other and embrace.",
            "Person 1 wraps both arms around Person 2.",
            "Person 1's hands are on Person 2's back.",
        ),
        sided=False,
    ),
    ContactType(
        "hand on knee (self)", ONE,
        contacts=((0, "right_hand", 0, "right_leg"),),
        placement=((0.0, 0.0, J(0.0, 20.0)),),
        seed_turns=tuple((0, f"spine0{i}", (J(8.0, 3.0), 0.0, 0.0)) for i in (5, 4, 3, 2))
        + ((0, "upperarm01.R", (J(-25.0, 8.0), 0.0, 0.0)), (0, "lowerleg01.R", (J(15.0, 8.0), 0.0, 0.0))),
        contact_chains=((0, "arm.R"),),
        answers=((("hand", "leg"),), (("hand", "knee"),), (("palm", "knee"),), (("hand", "thigh"),)),
        wrong=(("hand", "foot"), ("arm", "leg"), ("hand", "stomach")),
        also_true=(("feet", "ground"),),
        reasoning=(
            "The person bends forward slightly.",
            "One arm reaches down.",
            "The hand rests on the knee of the same side.",
        ),
    ),
    ContactType(
        "foot on thigh (self)", ONE,
        contacts=((0, "right_foot", 0, "left_leg"),),
        placement=((0.0, 0.0, J(0.0, 20.0)),),
        seed_turns=((0, "upperleg01.L", (0.0, J(5.0, 2.0), 0.0)), (0, "lowerleg01.R", (J(120.0, 8.0), 0.0, 0.0)),
                    (0, "upperleg01.R", (0.0, 0.0, J(-70.0, 6.0))), (0, "upperleg01.R", (0.0, J(35.0, 5.0), 0.0)),
                    (0, "upperleg01.R", (J(-35.0, 6.0), 0.0, 0.0))),
        contact_chains=((0, "leg.R"),),
        answers=((("foot", "leg"),), (("foot", "thigh"),), (("sole", "thigh"),), (("foot", "knee"),)),
        wrong=(("foot", "foot"), ("hand", "foot"), ("leg", "leg")),
        also_true=(("foot", "ground"),),
        reasoning=(
            "The person balances on one leg in a tree pose.",
            "The other knee is bent and turned out.",
            "The sole of that foot presses against the inside of the standing thigh.",
        ),
    ),
    ContactType(
        "hands on the ground", ONE,
        contacts=((0, "left_hand", 0, GROUND), (0, "right_hand", 0, GROUND), (0, "left_foot", 0, GROUND), (0, "right_foot", 0, GROUND)),
        placement=((0.0, 0.0, J(0.0, 20.0)),),
        seed_turns=tuple((0, f"upperleg01.{s}", (J(-100.0, 6.0), 0.0, 0.0)) for s in "LR")
        + tuple((0, f"lowerleg01.{s}", (J(120.0, 5.0), 0.0, 0.0)) for s in "LR")
        + tuple((0, f"foot.{s}", (-20.0, 0.0, 0.0)) for s in "LR")
        + tuple((0, f"spine0{i}", (J(10.0, 3.0), 0.0, 0.0)) for i in (5, 4, 3, 2))
        + tuple((0, f"upperarm01.{s}", (J(-30.0, 8.0), 0.0, 0.0)) for s in "LR"),
        seed_root_lowering=0.48,
        contact_chains=((0, "arm.L"), (0, "arm.R")),
        answers=((("hands", "ground"), ("feet", "ground")), (("hands", "floor"), ("feet", "floor")),
                 (("hand", "ground"), ("hand", "ground"), ("feet", "ground"))),
        wrong=(("leg", "ground"), ("hand", "foot"), ("butt", "ground")),
        reasoning=(
            "The person crouches in a deep squat.",
            "The feet are flat on the floor.",
            "Both hands reach down and touch the floor in front of the feet.",
        ),
        sided=False,
    ),
    ContactType(
        "head on shoulder", TWO,
        contacts=((0, "head", 1, "left_shoulder"),),
        placement=((0.0, 0.0, 0.0), (J(-0.42, 0.03), J(0.06, 0.04), J(0.0, 10.0))),
        # The arms between them out of each other's way: Person 1's near arm hanging straight
        # and a little forward, Person 2's (standing a little behind) swung back behind
        # Person 1's shoulder (from the A-pose they crossed, and the leaning shoulder met
        # the partner's upper arm).
        seed_turns=tuple((0, f"spine0{i}", (0.0, J(-5.0, 2.0), 0.0)) for i in (4, 3, 2))
        + ((0, "neck01", (0.0, J(-15.0, 5.0), 0.0)), (0, "neck02", (0.0, J(-10.0, 4.0), 0.0)),
           (0, "upperarm01.R", (J(-20.0, 5.0), J(-35.0, 5.0), 0.0)), (1, "upperarm01.L", (J(30.0, 5.0), J(35.0, 5.0), 0.0))),
        contact_chains=((0, "neck"), (0, "spine")),
        answers=((("head", "shoulder"),), (("head", "shoulder (front)"),), (("cheek", "shoulder"),), (("head", "shoulder"),)),
        wrong=(("head", "neck"), ("head", "arm"), ("arm", "arm")),
        reasoning=(
            "The two people stand side by side, shoulder to shoulder.",
            "Person 1 leans sideways.",
            "Person 1's head rests on Person 2's shoulder.",
        ),
        stature_gap=(0.10, 0.25),
    ),
)

TYPE_NAMES: tuple[str, ...] = tuple(t.name for t in CONTACT_TYPES)


def contact_type(name: str) -> ContactType:
    for kind in CONTACT_TYPES:
        if kind.name == name or kind.slug == name:
            return kind
    raise KeyError(f"unknown contact type {name!r}; known: {', '.join(TYPE_NAMES)}")

