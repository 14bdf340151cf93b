"""Job and result files of ``python -m engine refine``: what the Blender side writes and reads.

Both are frozen dataclasses with ``schema_version``, ``from_dict``/``to_dict``; ``from_dict``
rejects unknown keys, missing keys, wrong types and wrong versions with a message naming the
offending path. The JSON Schemas (``schemas/job.schema.json``, ``schemas/result.schema.json``)
describe the same structure; ``schemas/job.md`` explains the fields for people writing jobs.

Things that need the body model to check (joint names, shape length) are checked when the job
is run (``engine.commands.refine``), not here: this module imports no torch and no body.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.body.regions import GROUND, MESH_REGIONS

JOB_SCHEMA_VERSION = 1
RESULT_SCHEMA_VERSION = 1

BodyKind = Literal["anny", "smplx"]
BODY_KINDS: tuple[str, ...] = ("anny", "smplx")
SolveKind = Literal["frames", "sequence"]
SOLVE_KINDS: tuple[str, ...] = ("frames", "sequence")

# Weight names a job may override, one value per optimization stage (see engine.refine.optimizer).
WEIGHT_NAMES: tuple[str, ...] = (
    "contact",
    "stay_close",
    "joint_limits",
    "penetration",
    "shape_prior",
    "keypoints_2d",
)
NUM_STAGES = 2


# Magnitudes a job may hold (issue 18): beyond them float32 arithmetic overflows or loses the
# pose entirely, so a job is refused with the field's name instead of ending in NaN.
MAX_POSITION_M = 10_000.0  # root translations and the floor, metres from the origin
MAX_SHAPE_VALUE = 1_000.0  # shape coefficients (Anny phenotypes are in [0, 1], betas a few units)
MAX_WEIGHT = 1e9  # stage weights, joint weights, contact weights
MAX_PIXELS = 1e7  # keypoints, focal lengths, principal points
MAX_CAMERA_VALUE = 1e6  # entries of world_to_camera
MAX_INTEGER = 2**31 - 1  # frames, seeds, counts: what Blender and torch take


class JobFormatError(ValueError):
    """A job or result dictionary does not follow the schema; the message names the path."""


# --------------------------------------------------------------------------------------------
# small validation helpers


def _expect_dict(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise JobFormatError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _check_keys(data: dict, required: tuple[str, ...], optional: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join(required + optional)
        raise JobFormatError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {allowed}")
    missing = [key for key in required if key not in data]
    if missing:
        raise JobFormatError(f"{where}: missing key(s) {', '.join(map(repr, missing))}")


def _shown(value: Any) -> str:
    """A value for a message: a huge integer is described, not printed in full."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**20:
        return f"a {len(str(abs(value)))}-digit integer"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _number(value: Any, where: str, limit: float | None = None, unit: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JobFormatError(f"{where}: expected a number, got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        raise JobFormatError(f"{where}: {_shown(value)} is too large for a number here") from None
    if not math.isfinite(number):
        raise JobFormatError(f"{where}: expected a finite number, got {value!r}")
    if limit is not None and abs(number) > limit:
        raise JobFormatError(
            f"{where}: {number:g}{unit} is out of range (at most {limit:g}{unit} in size); check the value"
        )
    return number


def _integer(value: Any, where: str, minimum: int | None = None, maximum: int = MAX_INTEGER) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise JobFormatError(f"{where}: expected an integer, got {_shown(value)}")
    if minimum is not None and value < minimum:
        raise JobFormatError(f"{where}: must be >= {minimum}, got {_shown(value)}")
    if abs(value) > maximum:
        raise JobFormatError(f"{where}: {_shown(value)} is too large (at most {maximum})")
    return value


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise JobFormatError(f"{where}: expected true or false, got {value!r}")
    return value


def _optional(read, value: Any, where: str, *args):
    """``read(value, where, *args)``, or None for a null (or absent) value."""
    return None if value is None else read(value, where, *args)


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise JobFormatError(f"{where}: expected a string, got {value!r}")
    return value


def _numbers(
    value: Any, where: str, length: int | None = None, limit: float | None = None, unit: str = ""
) -> tuple[float, ...]:
    if not isinstance(value, list):
        raise JobFormatError(f"{where}: expected a list of numbers, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise JobFormatError(f"{where}: expected {length} numbers, got {len(value)}")
    return tuple(_number(item, f"{where}[{i}]", limit, unit) for i, item in enumerate(value))


def unit_quaternion(values: tuple[float, ...], where: str) -> tuple[float, float, float, float]:
    """``values`` (w, x, y, z) scaled to unit length. Divided by its largest component first,
    so neither a huge (1e200) nor a tiny (1e-200) but valid quaternion over- or underflows;
    only an all-zero one is refused, and the result is checked to be finite."""
    largest = max(abs(v) for v in values)
    if largest == 0.0:
        raise JobFormatError(f"{where}: a zero quaternion is not a rotation")
    scaled = [v / largest for v in values]
    norm = math.sqrt(sum(v * v for v in scaled))
    quaternion = tuple(v / norm for v in scaled)
    if not all(math.isfinite(v) for v in quaternion):
        raise JobFormatError(f"{where}: {list(values)!r} cannot be normalised to a rotation")
    return quaternion  # type: ignore[return-value]


def non_finite_field(data: Any, where: str = "") -> str | None:
    """The path of the first number in ``data`` (dicts, lists, numbers) that is not finite, or
    None; a result holding one is never written (issue 18)."""
    stack = [(data, where)]
    while stack:
        value, path = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return path or "the value"
        if isinstance(value, dict):
            stack.extend((item, f"{path}.{key}" if path else str(key)) for key, item in reversed(list(value.items())))
        elif isinstance(value, (list, tuple)):
            stack.extend((item, f"{path}[{i}]") for i, item in reversed(list(enumerate(value))))
    return None


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise JobFormatError(f"{where}: expected a list of strings, got {type(value).__name__}")
    return tuple(_string(item, f"{where}[{i}]") for i, item in enumerate(value))


def _check_version(data: dict, expected: int, what: str) -> None:
    if "schema_version" not in data:
        raise JobFormatError(f"{what}: missing 'schema_version' (this engine reads version {expected})")
    version = data["schema_version"]
    if version != expected or isinstance(version, bool):
        raise JobFormatError(
            f"{what}: schema_version {version!r} is not supported; this engine reads version {expected}. "
            "Re-export the file with a matching add-on version."
        )


# --------------------------------------------------------------------------------------------
# pieces shared by job and result


@dataclass(frozen=True)
class BodySpec:
    """Which body model: ``kind`` "anny" (built in) or "smplx" (``model_path`` to the user's
    licensed model file, .npz or .pkl)."""

    kind: BodyKind = "anny"
    model_path: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in BODY_KINDS:
            raise JobFormatError(f"body.kind: {self.kind!r} is not one of {', '.join(BODY_KINDS)}")
        if self.kind == "smplx" and not self.model_path:
            raise JobFormatError("body.model_path: an smplx body needs the path of your SMPL-X model file")

    @classmethod
    def from_dict(cls, data: Any, where: str = "body") -> BodySpec:
        data = _expect_dict(data, where)
        _check_keys(data, ("kind",), ("model_path",), where)
        path = data.get("model_path")
        return cls(
            kind=_string(data["kind"], f"{where}.kind"),  # type: ignore[arg-type]
            model_path=None if path is None else _string(path, f"{where}.model_path"),
        )

    def to_dict(self) -> dict:
        return {"kind": self.kind, "model_path": self.model_path}


@dataclass(frozen=True)
class PersonPose:
    """One person's pose in one frame.

    shape: the body's shape coefficients (Anny phenotypes, SMPL-X betas); empty = the body's
        neutral shape.
    rotations: local rotation per joint name as a unit quaternion (w, x, y, z) in the joint's
        rest frame (what Blender stores in ``pose_bone.rotation_quaternion``); joints not
        listed keep the identity. The root joint's entry is the global orientation.
    root_translation: the root offset in the model frame, metres.
    keypoints_2d: optional 2D keypoints per joint name, (u, v, confidence) in pixels of the
        job's camera.
    """

    shape: tuple[float, ...] = ()
    rotations: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    root_translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    keypoints_2d: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> PersonPose:
        data = _expect_dict(data, where)
        _check_keys(data, ("rotations", "root_translation"), ("shape", "keypoints_2d"), where)
        rotations_raw = _expect_dict(data["rotations"], f"{where}.rotations")
        rotations: dict[str, tuple[float, float, float, float]] = {}
        for name, quaternion in rotations_raw.items():
            values = _numbers(quaternion, f"{where}.rotations.{name}", 4)
            rotations[name] = unit_quaternion(values, f"{where}.rotations.{name}")
        keypoints_raw = _expect_dict(data.get("keypoints_2d", {}), f"{where}.keypoints_2d")
        keypoints = {
            name: _numbers(value, f"{where}.keypoints_2d.{name}", 3, MAX_PIXELS)  # type: ignore[misc]
            for name, value in keypoints_raw.items()
        }
        return cls(
            shape=_numbers(data.get("shape", []), f"{where}.shape", limit=MAX_SHAPE_VALUE),
            rotations=rotations,
            root_translation=_numbers(data["root_translation"], f"{where}.root_translation", 3, MAX_POSITION_M, " m"),  # type: ignore[arg-type]
            keypoints_2d=keypoints,  # type: ignore[arg-type]
        )

    def to_dict(self) -> dict:
        out: dict[str, Any] = {
            "shape": list(self.shape),
            "rotations": {name: list(q) for name, q in self.rotations.items()},
            "root_translation": list(self.root_translation),
        }
        if self.keypoints_2d:
            out["keypoints_2d"] = {name: list(k) for name, k in self.keypoints_2d.items()}
        return out


# --------------------------------------------------------------------------------------------
# job


@dataclass(frozen=True)
class PersonSettings:
    """What the optimizer may do with one person, for every frame.

    movable: False keeps this person exactly as given (an artist often wants only one to move).
    pinned_joints: joints that must not rotate (their rotation is held fixed, not just pulled).
    joint_weights: per-joint multipliers of the stay-close weight (0 frees a joint, 10 holds it
        ten times harder); the special names "root_translation" and "global_orientation"
        address the root's placement.
    """

    name: str = ""
    movable: bool = True
    pinned_joints: tuple[str, ...] = ()
    joint_weights: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> PersonSettings:
        data = _expect_dict(data, where)
        _check_keys(data, (), ("name", "movable", "pinned_joints", "joint_weights"), where)
        weights_raw = _expect_dict(data.get("joint_weights", {}), f"{where}.joint_weights")
        weights = {}
        for name, value in weights_raw.items():
            weight = _number(value, f"{where}.joint_weights.{name}", MAX_WEIGHT)
            if weight < 0:
                raise JobFormatError(f"{where}.joint_weights.{name}: weights are >= 0, got {weight}")
            weights[name] = weight
        return cls(
            name=_string(data.get("name", ""), f"{where}.name"),
            movable=_boolean(data.get("movable", True), f"{where}.movable"),
            pinned_joints=_strings(data.get("pinned_joints", []), f"{where}.pinned_joints"),
            joint_weights=weights,
        )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "movable": self.movable,
            "pinned_joints": list(self.pinned_joints),
            "joint_weights": dict(self.joint_weights),
        }


@dataclass(frozen=True)
class ContactInterval:
    """The frames over which a contact holds in a clip (issue 20): fully from ``start`` to
    ``end`` (inclusive), eased in over the ``ease_in`` frames before ``start`` and out over the
    ``ease_out`` frames after ``end`` (a smoothstep of the contact's weight, so the correction
    grows and fades without a pop). Frames outside every interval come back unchanged."""

    start: int
    end: int
    ease_in: int = 0
    ease_out: int = 0

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise JobFormatError(f"interval: end {self.end} is before start {self.start}")
        if self.ease_in < 0 or self.ease_out < 0:
            raise JobFormatError("interval: ease_in and ease_out are frame counts >= 0")

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ContactInterval:
        data = _expect_dict(data, where)
        _check_keys(data, ("start", "end"), ("ease_in", "ease_out"), where)
        start = _integer(data["start"], f"{where}.start")
        end = _integer(data["end"], f"{where}.end")
        if end < start:
            raise JobFormatError(f"{where}.end: {end} is before start {start}")
        return cls(
            start=start,
            end=end,
            ease_in=_integer(data.get("ease_in", 0), f"{where}.ease_in", 0),
            ease_out=_integer(data.get("ease_out", 0), f"{where}.ease_out", 0),
        )

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "ease_in": self.ease_in, "ease_out": self.ease_out}


@dataclass(frozen=True)
class ExplicitContact:
    """A contact added by the artist: ``region_a`` of person ``person_a`` touches ``region_b``
    of person ``person_b`` (0-based; ``region_b`` may be "ground", then ``person_b`` =
    ``person_a``)."""

    person_a: int
    region_a: str
    person_b: int
    region_b: str
    weight: float = 1.0
    # None: the contact holds on every frame of the job (and a single-frame solve ignores it).
    interval: ContactInterval | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ExplicitContact:
        data = _expect_dict(data, where)
        _check_keys(data, ("person_a", "region_a", "person_b", "region_b"), ("weight", "interval"), where)
        region_a = _string(data["region_a"], f"{where}.region_a")
        region_b = _string(data["region_b"], f"{where}.region_b")
        if region_a not in MESH_REGIONS:
            raise JobFormatError(f"{where}.region_a: unknown region {region_a!r}; known: {', '.join(MESH_REGIONS)}")
        if region_b != GROUND and region_b not in MESH_REGIONS:
            raise JobFormatError(f"{where}.region_b: unknown region {region_b!r}; known: ground, {', '.join(MESH_REGIONS)}")
        weight = _number(data.get("weight", 1.0), f"{where}.weight", MAX_WEIGHT)
        if weight < 0:
            raise JobFormatError(f"{where}.weight: weights are >= 0, got {weight}")
        return cls(
            person_a=_integer(data["person_a"], f"{where}.person_a", 0),
            region_a=region_a,
            person_b=_integer(data["person_b"], f"{where}.person_b", 0),
            region_b=region_b,
            weight=weight,
            interval=_optional(ContactInterval.from_dict, data.get("interval"), f"{where}.interval"),
        )

    def to_dict(self) -> dict:
        out: dict[str, Any] = {
            "person_a": self.person_a,
            "region_a": self.region_a,
            "person_b": self.person_b,
            "region_b": self.region_b,
            "weight": self.weight,
        }
        # Written only when set, so a job without intervals reads back byte for byte as before.
        if self.interval is not None:
            out["interval"] = self.interval.to_dict()
        return out


@dataclass(frozen=True)
class ConstraintSpec:
    """The contact constraints of the job.

    lmm_samples: parsed LMM samples, each a dict in ``engine.contacts.constraints``' sample form (kept
        as data here; the engine builds the objective from them at load time).
    disabled: summary keys of aggregated constraints the artist switched off.
    min_samples: f, how many samples must name a one-person constraint to keep it.
    empty_backoff: t, how many empty samples make the engine drop the LMM terms; None (the
        default) = half of the samples, rounded up; 0 = never.
    lmm_weight: multiplier of every LMM term.
    explicit: contacts added by the artist.
    lmm_interval: the frames over which the LMM's contacts hold in a sequence solve (they
        describe one moment; the artist stretches them over an interval); None = every frame.
    """

    lmm_samples: tuple[dict, ...] = ()
    disabled: tuple[str, ...] = ()
    min_samples: int = 10
    empty_backoff: int | None = None
    lmm_weight: float = 1.0
    explicit: tuple[ExplicitContact, ...] = ()
    lmm_interval: ContactInterval | None = None

    @classmethod
    def from_dict(cls, data: Any, where: str = "constraints") -> ConstraintSpec:
        data = _expect_dict(data, where)
        _check_keys(
            data, (), ("lmm_samples", "disabled", "min_samples", "empty_backoff", "lmm_weight", "explicit", "lmm_interval"),
            where,
        )
        samples = data.get("lmm_samples", [])
        if not isinstance(samples, list):
            raise JobFormatError(f"{where}.lmm_samples: expected a list of sample objects")
        for i, sample in enumerate(samples):
            _expect_dict(sample, f"{where}.lmm_samples[{i}]")
        explicit = data.get("explicit", [])
        if not isinstance(explicit, list):
            raise JobFormatError(f"{where}.explicit: expected a list of contact objects")
        lmm_weight = _number(data.get("lmm_weight", 1.0), f"{where}.lmm_weight", MAX_WEIGHT)
        if lmm_weight < 0:
            raise JobFormatError(f"{where}.lmm_weight: weights are >= 0, got {lmm_weight}")
        return cls(
            lmm_samples=tuple(samples),
            disabled=_strings(data.get("disabled", []), f"{where}.disabled"),
            min_samples=_integer(data.get("min_samples", 10), f"{where}.min_samples", 1),
            empty_backoff=_optional(_integer, data.get("empty_backoff"), f"{where}.empty_backoff", 0),
            lmm_weight=lmm_weight,
            explicit=tuple(ExplicitContact.from_dict(c, f"{where}.explicit[{i}]") for i, c in enumerate(explicit)),
            lmm_interval=_optional(ContactInterval.from_dict, data.get("lmm_interval"), f"{where}.lmm_interval"),
        )

    @property
    def has_intervals(self) -> bool:
        return self.lmm_interval is not None or any(c.interval is not None for c in self.explicit)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {
            "lmm_samples": [dict(s) for s in self.lmm_samples],
            "disabled": list(self.disabled),
            "min_samples": self.min_samples,
            "empty_backoff": self.empty_backoff,
            "lmm_weight": self.lmm_weight,
            "explicit": [c.to_dict() for c in self.explicit],
        }
        if self.lmm_interval is not None:
            out["lmm_interval"] = self.lmm_interval.to_dict()
        return out


@dataclass(frozen=True)
class Camera:
    """A pinhole camera for the optional 2D keypoint term.

    world_to_camera: 4x4 row-major rigid transform from the engine's world frame (Z up,
        metres) to the camera frame with OpenCV axes (x right, y down, z forward).
    focal_length_px: (fx, fy); principal_point_px: (cx, cy).
    """

    world_to_camera: tuple[tuple[float, ...], ...]
    focal_length_px: tuple[float, float]
    principal_point_px: tuple[float, float]

    @classmethod
    def from_dict(cls, data: Any, where: str = "options.camera") -> Camera:
        data = _expect_dict(data, where)
        _check_keys(data, ("world_to_camera", "focal_length_px", "principal_point_px"), (), where)
        rows = data["world_to_camera"]
        if not isinstance(rows, list) or len(rows) != 4:
            raise JobFormatError(f"{where}.world_to_camera: expected 4 rows of 4 numbers")
        matrix = tuple(_numbers(row, f"{where}.world_to_camera[{i}]", 4, MAX_CAMERA_VALUE) for i, row in enumerate(rows))
        return cls(
            world_to_camera=matrix,
            focal_length_px=_numbers(data["focal_length_px"], f"{where}.focal_length_px", 2, MAX_PIXELS),  # type: ignore[arg-type]
            principal_point_px=_numbers(data["principal_point_px"], f"{where}.principal_point_px", 2, MAX_PIXELS),  # type: ignore[arg-type]
        )

    def to_dict(self) -> dict:
        return {
            "world_to_camera": [list(row) for row in self.world_to_camera],
            "focal_length_px": list(self.focal_length_px),
            "principal_point_px": list(self.principal_point_px),
        }


@dataclass(frozen=True)
class JobOptions:
    """Optimizer options. ``weights`` overrides the per-stage weights of
    ``engine.refine.optimizer.StageWeights`` (name -> one value per stage); ``iterations`` is the
    maximum per stage; ``progress_every`` is how many iterations between progress lines.
    ``floor_height``: z of the floor plane (metres, world frame) for ground contacts; None (the
    default) = where the bodies stand, the lowest foot point of the first frame's initial
    poses (``engine.refine.floor``)."""

    seed: int = 0
    floor_height: float | None = None
    iterations: tuple[int, ...] = (1000, 1000)
    weights: dict[str, tuple[float, ...]] = field(default_factory=dict)
    warm_start: bool = True
    progress_every: int = 10
    camera: Camera | None = None
    # False holds each person's shape as given: the Blender side builds meshes and bones for
    # a fixed shape, and a joint's rest frame (which the rotations refer to) moves with it.
    optimize_shape: bool = True
    # "frames": each frame on its own (warm-started); "sequence": every frame solved together
    # (engine.refine.sequence), what a job with any contact interval gets whatever this says.
    solve: SolveKind = "frames"
    # Sequence solve: keep the feet that are low and slow in the original where they were
    # (a contact fix must not make them slide).
    planted_feet: bool = True
    # Sequence solve: the most Adam steps (one stage, all frames at once).
    sequence_iterations: int = 400

    @classmethod
    def from_dict(cls, data: Any, where: str = "options") -> JobOptions:
        data = _expect_dict(data, where)
        _check_keys(
            data, (),
            ("seed", "floor_height", "iterations", "weights", "warm_start", "progress_every", "camera", "optimize_shape",
             "solve", "planted_feet", "sequence_iterations"),
            where,
        )
        solve = _string(data.get("solve", "frames"), f"{where}.solve")
        if solve not in SOLVE_KINDS:
            raise JobFormatError(f"{where}.solve: {solve!r} is not one of {', '.join(SOLVE_KINDS)}")
        iterations_raw = data.get("iterations", [1000, 1000])
        if not isinstance(iterations_raw, list) or len(iterations_raw) != NUM_STAGES:
            raise JobFormatError(f"{where}.iterations: expected {NUM_STAGES} integers (one per stage)")
        iterations = tuple(_integer(v, f"{where}.iterations[{i}]", 0) for i, v in enumerate(iterations_raw))
        weights_raw = _expect_dict(data.get("weights", {}), f"{where}.weights")
        weights: dict[str, tuple[float, ...]] = {}
        for name, values in weights_raw.items():
            if name not in WEIGHT_NAMES:
                raise JobFormatError(f"{where}.weights: unknown weight {name!r}; known: {', '.join(WEIGHT_NAMES)}")
            stage_values = _numbers(values, f"{where}.weights.{name}", NUM_STAGES, MAX_WEIGHT)
            if any(v < 0 for v in stage_values):
                raise JobFormatError(f"{where}.weights.{name}: weights are >= 0")
            weights[name] = stage_values
        camera = data.get("camera")
        return cls(
            seed=_integer(data.get("seed", 0), f"{where}.seed", 0),
            floor_height=_optional(_number, data.get("floor_height"), f"{where}.floor_height", MAX_POSITION_M, " m"),
            iterations=iterations,
            weights=weights,
            warm_start=_boolean(data.get("warm_start", True), f"{where}.warm_start"),
            progress_every=_integer(data.get("progress_every", 10), f"{where}.progress_every", 1),
            camera=None if camera is None else Camera.from_dict(camera, f"{where}.camera"),
            optimize_shape=_boolean(data.get("optimize_shape", True), f"{where}.optimize_shape"),
            solve=solve,  # type: ignore[arg-type]
            planted_feet=_boolean(data.get("planted_feet", True), f"{where}.planted_feet"),
            sequence_iterations=_integer(data.get("sequence_iterations", 400), f"{where}.sequence_iterations", 1),
        )

    def to_dict(self) -> dict:
        return {
            "seed": self.seed,
            "floor_height": self.floor_height,
            "iterations": list(self.iterations),
            "weights": {name: list(v) for name, v in self.weights.items()},
            "warm_start": self.warm_start,
            "progress_every": self.progress_every,
            "camera": None if self.camera is None else self.camera.to_dict(),
            "optimize_shape": self.optimize_shape,
            "solve": self.solve,
            "planted_feet": self.planted_feet,
            "sequence_iterations": self.sequence_iterations,
        }


@dataclass(frozen=True)
class FramePoses:
    """The people of one frame, in the order of ``Job.people``."""

    frame: int
    people: tuple[PersonPose, ...]

    @classmethod
    def from_dict(cls, data: Any, where: str) -> FramePoses:
        data = _expect_dict(data, where)
        _check_keys(data, ("frame", "people"), (), where)
        people = data["people"]
        if not isinstance(people, list) or not people:
            raise JobFormatError(f"{where}.people: expected a non-empty list of poses")
        return cls(
            frame=_integer(data["frame"], f"{where}.frame"),
            people=tuple(PersonPose.from_dict(p, f"{where}.people[{i}]") for i, p in enumerate(people)),
        )

    def to_dict(self) -> dict:
        return {"frame": self.frame, "people": [p.to_dict() for p in self.people]}


@dataclass(frozen=True)
class Job:
    """One refinement job: a body model, one or two people, their poses per frame, the
    contact constraints and the optimizer options. Frames are refined in order, each
    warm-started from the previous frame's result when ``options.warm_start`` is set."""

    body: BodySpec
    people: tuple[PersonSettings, ...]
    frames: tuple[FramePoses, ...]
    constraints: ConstraintSpec = ConstraintSpec()
    options: JobOptions = JobOptions()
    schema_version: int = JOB_SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version != JOB_SCHEMA_VERSION:
            raise JobFormatError(f"job: schema_version must be {JOB_SCHEMA_VERSION}")
        if not 1 <= len(self.people) <= 2:
            raise JobFormatError(f"people: a job has one or two people, got {len(self.people)}")
        if not self.frames:
            raise JobFormatError("frames: a job needs at least one frame")
        for i, frame in enumerate(self.frames):
            if len(frame.people) != len(self.people):
                raise JobFormatError(
                    f"frames[{i}].people: {len(frame.people)} poses for {len(self.people)} people "
                    "(give one pose per entry of 'people', in the same order)"
                )
        for i, contact in enumerate(self.constraints.explicit):
            for person in (contact.person_a, contact.person_b):
                if person >= len(self.people):
                    raise JobFormatError(
                        f"constraints.explicit[{i}]: person {person} does not exist (0-based, {len(self.people)} people)"
                    )
            if contact.region_b == GROUND and contact.person_b != contact.person_a:
                raise JobFormatError(f"constraints.explicit[{i}]: a ground contact names the same person twice")
        if self.is_sequence:
            numbers = [frame.frame for frame in self.frames]
            for i in range(1, len(numbers)):
                if numbers[i] != numbers[i - 1] + 1:
                    raise JobFormatError(
                        f"frames[{i}].frame: a sequence solve needs consecutive frames in order "
                        f"(frame {numbers[i - 1]} is followed by {numbers[i]})"
                    )
        if any(person.keypoints_2d for frame in self.frames for person in frame.people) and self.options.camera is None:
            raise JobFormatError("options.camera: 2D keypoints were given without a camera; add options.camera")

    @property
    def is_sequence(self) -> bool:
        """Whether the frames are solved together (engine.refine.sequence)."""
        return self.options.solve == "sequence" or self.constraints.has_intervals

    @classmethod
    def from_dict(cls, data: Any) -> Job:
        data = _expect_dict(data, "job")
        _check_version(data, JOB_SCHEMA_VERSION, "job")
        _check_keys(data, ("schema_version", "body", "people", "frames"), ("constraints", "options"), "job")
        people = data["people"]
        if not isinstance(people, list):
            raise JobFormatError("people: expected a list of person settings")
        frames = data["frames"]
        if not isinstance(frames, list):
            raise JobFormatError("frames: expected a list of frames")
        return cls(
            body=BodySpec.from_dict(data["body"]),
            people=tuple(PersonSettings.from_dict(p, f"people[{i}]") for i, p in enumerate(people)),
            frames=tuple(FramePoses.from_dict(f, f"frames[{i}]") for i, f in enumerate(frames)),
            constraints=ConstraintSpec.from_dict(data.get("constraints", {})),
            options=JobOptions.from_dict(data.get("options", {})),
        )

    def to_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "body": self.body.to_dict(),
            "people": [p.to_dict() for p in self.people],
            "frames": [f.to_dict() for f in self.frames],
            "constraints": self.constraints.to_dict(),
            "options": self.options.to_dict(),
        }


# --------------------------------------------------------------------------------------------
# result


@dataclass(frozen=True)
class ConstraintDistance:
    """One contact term's unweighted value (metres) before and after refinement: for an
    artist contact or a one-person row, the distance of its closest alternative; for a
    two-person LMM sample, the sum over its rows under its best assignment."""

    label: str
    source: Literal["lmm", "artist"]
    weight: float
    before_m: float
    after_m: float

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ConstraintDistance:
        data = _expect_dict(data, where)
        _check_keys(data, ("label", "source", "weight", "before_m", "after_m"), (), where)
        source = _string(data["source"], f"{where}.source")
        if source not in ("lmm", "artist"):
            raise JobFormatError(f"{where}.source: expected 'lmm' or 'artist', got {source!r}")
        return cls(
            label=_string(data["label"], f"{where}.label"),
            source=source,  # type: ignore[arg-type]
            weight=_number(data["weight"], f"{where}.weight"),
            before_m=_number(data["before_m"], f"{where}.before_m"),
            after_m=_number(data["after_m"], f"{where}.after_m"),
        )

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "source": self.source,
            "weight": self.weight,
            "before_m": self.before_m,
            "after_m": self.after_m,
        }


@dataclass(frozen=True)
class FrameResult:
    """The refined people of one frame and what happened."""

    frame: int
    people: tuple[PersonPose, ...]
    constraints: tuple[ConstraintDistance, ...]
    losses: dict[str, float]
    iterations: tuple[int, ...]
    wall_time_s: float
    backed_off: bool
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Any, where: str) -> FrameResult:
        data = _expect_dict(data, where)
        _check_keys(
            data,
            ("frame", "people", "constraints", "losses", "iterations", "wall_time_s", "backed_off"),
            ("warnings",),
            where,
        )
        losses = _expect_dict(data["losses"], f"{where}.losses")
        iterations = data["iterations"]
        if not isinstance(iterations, list):
            raise JobFormatError(f"{where}.iterations: expected a list of integers")
        people = data["people"]
        constraints = data["constraints"]
        if not isinstance(people, list) or not isinstance(constraints, list):
            raise JobFormatError(f"{where}: people and constraints are lists")
        return cls(
            frame=_integer(data["frame"], f"{where}.frame"),
            people=tuple(PersonPose.from_dict(p, f"{where}.people[{i}]") for i, p in enumerate(people)),
            constraints=tuple(ConstraintDistance.from_dict(c, f"{where}.constraints[{i}]") for i, c in enumerate(constraints)),
            losses={k: _number(v, f"{where}.losses.{k}") for k, v in losses.items()},
            iterations=tuple(_integer(v, f"{where}.iterations[{i}]", 0) for i, v in enumerate(iterations)),
            wall_time_s=_number(data["wall_time_s"], f"{where}.wall_time_s"),
            backed_off=_boolean(data["backed_off"], f"{where}.backed_off"),
            warnings=_strings(data.get("warnings", []), f"{where}.warnings"),
        )

    def to_dict(self) -> dict:
        return {
            "frame": self.frame,
            "people": [p.to_dict() for p in self.people],
            "constraints": [c.to_dict() for c in self.constraints],
            "losses": dict(self.losses),
            "iterations": list(self.iterations),
            "wall_time_s": self.wall_time_s,
            "backed_off": self.backed_off,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Result:
    """What ``python -m engine refine`` writes: the refined frames in the job's order, and the
    floor height the ground contacts used (the job's, or the lowest foot point; None in a
    result written before the floor was recorded)."""

    body: BodySpec
    frames: tuple[FrameResult, ...]
    wall_time_s: float
    warnings: tuple[str, ...] = ()
    floor_height: float | None = None
    schema_version: int = RESULT_SCHEMA_VERSION

    @classmethod
    def from_dict(cls, data: Any) -> Result:
        data = _expect_dict(data, "result")
        _check_version(data, RESULT_SCHEMA_VERSION, "result")
        _check_keys(data, ("schema_version", "body", "frames", "wall_time_s"), ("warnings", "floor_height"), "result")
        frames = data["frames"]
        if not isinstance(frames, list):
            raise JobFormatError("result.frames: expected a list")
        return cls(
            body=BodySpec.from_dict(data["body"], "result.body"),
            frames=tuple(FrameResult.from_dict(f, f"result.frames[{i}]") for i, f in enumerate(frames)),
            wall_time_s=_number(data["wall_time_s"], "result.wall_time_s"),
            warnings=_strings(data.get("warnings", []), "result.warnings"),
            floor_height=_optional(_number, data.get("floor_height"), "result.floor_height"),
        )

    def to_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "body": self.body.to_dict(),
            "frames": [f.to_dict() for f in self.frames],
            "wall_time_s": self.wall_time_s,
            "floor_height": self.floor_height,
            "warnings": list(self.warnings),
        }
