"""The batch manifest: JSON Lines, one work item per line (docs/batch.md).

An item names a job file (schemas/job.md), optionally a reference image whose contacts are
asked first (their parsed samples replace the job's ``constraints.lmm_samples``), and
optionally a ground truth to evaluate the result against::

    {"job": "jobs/0001.json"}
    {"id": "take3-f120", "job": "jobs/0002.json", "image": "frames/0002.jpg", "boxes": ["10,20,300,400"]}
    {"job": "jobs/0003.json", "ground_truth": "truth/0003.json"}

Paths are relative to the manifest's folder. Blank lines and lines starting with ``#`` are
skipped. Like the job file, an item is a versioned dataclass (``schema_version``, 1 when
absent) that rejects unknown keys; every error names the manifest, the line and the field.

The ground truth (inline object or a JSON file) has one entry per evaluated frame of the job::

    {"frames": [{"frame": 1,
                 "joints": [[[x, y, z], ...], ...],      # per person, the body's joints (metres, world frame)
                 "vertices": [[[x, y, z], ...], ...],    # optional, per person, every vertex
                 "contacts": [{"person_a": 0, "region_a": "right_hand",
                               "person_b": 1, "region_b": "left_shoulder"}]}]}

The driver reads the manifest and hashes every file it names (the resume key) but parses no
job and no ground truth: the workers do, so a bad one fails its item only, and the driver's
memory does not grow with the manifest. Imports no torch and no ray."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import EngineError

MANIFEST_SCHEMA_VERSION = 1
GROUND_TRUTH_SCHEMA_VERSION = 1
ITEM_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")
_ITEM_KEYS = ("schema_version", "id", "job", "image", "boxes", "ground_truth")
_FRAME_KEYS = ("frame", "joints", "vertices", "contacts")
_CONTACT_KEYS = ("person_a", "region_a", "person_b", "region_b")


class ManifestError(EngineError):
    """A manifest line (or a ground-truth file it names) is not usable; the message says where."""


@dataclass(frozen=True)
class TruthContact:
    """A ground-truth touching pair: ``region_a`` of ``person_a`` touches ``region_b`` of
    ``person_b`` ("ground" = the floor, then ``person_b`` is ``person_a``)."""

    person_a: int
    region_a: str
    person_b: int
    region_b: str


@dataclass(frozen=True)
class TruthFrame:
    """Ground truth of one job frame: (people, joints, 3) and (people, vertices, 3) metres."""

    frame: int
    joints: np.ndarray | None
    vertices: np.ndarray | None
    contacts: tuple[TruthContact, ...]


@dataclass(frozen=True)
class GroundTruth:
    frames: tuple[TruthFrame, ...]
    schema_version: int = GROUND_TRUTH_SCHEMA_VERSION

    def frame(self, number: int) -> TruthFrame | None:
        for frame in self.frames:
            if frame.frame == number:
                return frame
        return None


@dataclass(frozen=True)
class ManifestItem:
    """One line of the manifest, paths resolved against the manifest's folder.

    ``key`` is the sha256 of what decides the item's result: the line's own fields and the
    bytes of every file it names. A finished item is skipped on a rerun only when its key is
    unchanged, so an edited job file under the same name is refined again."""

    id: str
    line: int
    job: Path
    image: Path | None
    boxes: tuple[str, ...]
    ground_truth_file: Path | None
    ground_truth_inline: dict | None
    key: str
    schema_version: int = MANIFEST_SCHEMA_VERSION


# ------------------------------------------------------------------------------------------ helpers


def _fail(where: str, message: str) -> ManifestError:
    return ManifestError(f"{where}: {message}")


def _integer(value: Any, where: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise _fail(where, f"must be >= {minimum}, got {value}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(where, f"expected a non-empty string, got {value!r}")
    return value


def _points(value: Any, where: str) -> np.ndarray:
    """(people, points, 3) nested lists of finite numbers in metres -> a float64 array."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _fail(where, "expected one list of [x, y, z] numbers per person, every person with as many points") from None
    if array.ndim != 3 or array.shape[-1] != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise _fail(where, f"expected (people, points, 3) numbers, got the shape {array.shape}")
    if not np.isfinite(array).all() or np.abs(array).max() > 1e4:
        raise _fail(where, "every coordinate must be a finite number of metres (under 10 km)")
    return array


def _contact(value: Any, where: str) -> TruthContact:
    # Imported here: the driver reads manifests without the body package (it imports torch).
    from engine.body.regions import GROUND, MESH_REGIONS

    if not isinstance(value, dict):
        raise _fail(where, "expected an object with person_a, region_a, person_b, region_b")
    _check_keys(value, _CONTACT_KEYS, _CONTACT_KEYS, where)
    region_a, region_b = _string(value["region_a"], f"{where}.region_a"), _string(value["region_b"], f"{where}.region_b")
    if region_a not in MESH_REGIONS:
        raise _fail(f"{where}.region_a", f"unknown region {region_a!r}; known: {', '.join(MESH_REGIONS)}")
    if region_b != GROUND and region_b not in MESH_REGIONS:
        raise _fail(f"{where}.region_b", f"unknown region {region_b!r}; known: ground, {', '.join(MESH_REGIONS)}")
    contact = TruthContact(
        person_a=_integer(value["person_a"], f"{where}.person_a", 0),
        region_a=region_a,
        person_b=_integer(value["person_b"], f"{where}.person_b", 0),
        region_b=region_b,
    )
    if contact.region_b == GROUND and contact.person_b != contact.person_a:
        raise _fail(where, "a ground contact names the same person twice (person_b = person_a)")
    return contact


def _check_keys(data: dict, allowed: tuple[str, ...], required: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")
    missing = [key for key in required if key not in data]
    if missing:
        raise _fail(where, f"missing key(s) {', '.join(map(repr, missing))}")


def _version(data: dict, expected: int, where: str) -> int:
    version = data.get("schema_version", expected)
    if isinstance(version, bool) or version != expected:
        raise _fail(f"{where}.schema_version", f"{version!r} is not supported; this engine reads version {expected}")
    return expected


def ground_truth_from_dict(data: Any, where: str) -> GroundTruth:
    if not isinstance(data, dict):
        raise _fail(where, f"expected an object with 'frames', got {type(data).__name__}")
    _check_keys(data, ("schema_version", "frames"), ("frames",), where)
    _version(data, GROUND_TRUTH_SCHEMA_VERSION, where)
    frames_raw = data["frames"]
    if not isinstance(frames_raw, list) or not frames_raw:
        raise _fail(f"{where}.frames", "expected a non-empty list of frames")
    frames = []
    for i, raw in enumerate(frames_raw):
        at = f"{where}.frames[{i}]"
        if not isinstance(raw, dict):
            raise _fail(at, "expected an object")
        _check_keys(raw, _FRAME_KEYS, ("frame",), at)
        joints = raw.get("joints")
        vertices = raw.get("vertices")
        contacts = raw.get("contacts", [])
        if not isinstance(contacts, list):
            raise _fail(f"{at}.contacts", "expected a list of contact objects")
        frame = TruthFrame(
            frame=_integer(raw["frame"], f"{at}.frame"),
            joints=None if joints is None else _points(joints, f"{at}.joints"),
            vertices=None if vertices is None else _points(vertices, f"{at}.vertices"),
            contacts=tuple(_contact(c, f"{at}.contacts[{k}]") for k, c in enumerate(contacts)),
        )
        if frame.joints is None and frame.vertices is None and not frame.contacts:
            raise _fail(at, "a ground-truth frame needs joints, vertices or contacts")
        frames.append(frame)
    numbers = [f.frame for f in frames]
    if len(set(numbers)) != len(numbers):
        raise _fail(f"{where}.frames", "a frame number appears twice")
    return GroundTruth(frames=tuple(frames))


def read_ground_truth(text: str, where: str) -> GroundTruth:
    """A ground-truth file's text -> GroundTruth (ManifestError naming ``where``)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise _fail(where, f"not a JSON file ({error})") from None
    return ground_truth_from_dict(data, where)


def _read_bytes(path: Path, where: str, what: str) -> bytes:
    if path.is_dir():
        raise _fail(where, f"{what} {path} is a folder, not a file")
    try:
        return path.read_bytes()
    except OSError as error:
        raise _fail(where, f"cannot read {what} {path}: {error.strerror or error}") from None


def _default_id(line: int, job: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", job.stem)[:100] or "item"
    return f"{line:05d}-{stem}"


# ------------------------------------------------------------------------------------------ items


def item_from_dict(data: Any, manifest: Path, line: int) -> ManifestItem:
    """One parsed manifest line -> an item with the files it names read and hashed. Raises
    ManifestError naming ``manifest:line`` and the field."""
    where = f"manifest {manifest}, line {line}"
    if not isinstance(data, dict):
        raise _fail(where, f"expected a JSON object per line, got {type(data).__name__}")
    _check_keys(data, _ITEM_KEYS, ("job",), where)
    version = _version(data, MANIFEST_SCHEMA_VERSION, where)
    folder = manifest.resolve().parent
    job = folder / _string(data["job"], f"{where}: field 'job'")
    image_raw = data.get("image")
    image = None if image_raw is None else folder / _string(image_raw, f"{where}: field 'image'")
    boxes_raw = data.get("boxes", [])
    if not isinstance(boxes_raw, list) or not all(isinstance(b, str) for b in boxes_raw):
        raise _fail(f"{where}: field 'boxes'", "expected a list of 'x0,y0,x1,y1' strings")
    if boxes_raw and image is None:
        raise _fail(f"{where}: field 'boxes'", "boxes outline people in an image; give 'image' too")
    item_id = data.get("id")
    if item_id is None:
        item_id = _default_id(line, job)
    elif not isinstance(item_id, str) or not ITEM_ID_PATTERN.match(item_id):
        raise _fail(
            f"{where}: field 'id'",
            f"{item_id!r} is not a usable name (letters, digits, '.', '_', '-', at most 120, not starting with '.' or '-')",
        )

    digest = hashlib.sha256()
    digest.update(json.dumps({k: data.get(k) for k in _ITEM_KEYS if k not in ("ground_truth",)}, sort_keys=True).encode())
    digest.update(b"\0job\0" + _read_bytes(job, f"{where}: field 'job'", "job file"))
    if image is not None:
        digest.update(b"\0image\0" + _read_bytes(image, f"{where}: field 'image'", "image"))
    truth_raw = data.get("ground_truth")
    truth_file: Path | None = None
    if isinstance(truth_raw, str):
        truth_file = folder / truth_raw
        digest.update(b"\0truth\0" + _read_bytes(truth_file, f"{where}: field 'ground_truth'", "ground-truth file"))
    elif isinstance(truth_raw, dict):
        digest.update(b"\0truth\0" + json.dumps(truth_raw, sort_keys=True).encode())
    elif truth_raw is not None:
        raise _fail(f"{where}: field 'ground_truth'", "expected the path of a ground-truth file or an inline object")
    return ManifestItem(
        id=item_id,
        line=line,
        job=job,
        image=image,
        boxes=tuple(boxes_raw),
        ground_truth_file=truth_file,
        ground_truth_inline=truth_raw if isinstance(truth_raw, dict) else None,
        key=digest.hexdigest(),
        schema_version=version,
    )


def read_manifest(path: Path) -> list[ManifestItem]:
    """Every item of the manifest at ``path``, in order; the first bad line raises
    ManifestError (nothing runs on a manifest with a typo: a run of thousands of items is
    not started to fail on line 9000)."""
    if path.is_dir():
        raise ManifestError(f"manifest {path}: is a folder; give a JSON Lines file (docs/batch.md)")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} does not exist") from None
    except UnicodeDecodeError as error:
        raise ManifestError(f"manifest {path}: not a text file (byte {error.start} is not UTF-8)") from None
    except OSError as error:
        raise ManifestError(f"cannot read manifest {path}: {error.strerror or error}") from None
    items: list[ManifestItem] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            data = json.loads(stripped)
        except (ValueError, RecursionError) as error:
            message = error.msg if isinstance(error, json.JSONDecodeError) else str(error) or "nested too deeply"
            raise ManifestError(f"manifest {path}, line {number}: not a JSON object ({message})") from None
        item = item_from_dict(data, path, number)
        if item.id in seen:
            raise ManifestError(
                f"manifest {path}, line {number}: field 'id': {item.id!r} is already the id of line {seen[item.id]}; "
                "each item needs its own (it names the item's result file)"
            )
        seen[item.id] = number
        items.append(item)
    if not items:
        raise ManifestError(f"manifest {path}: no items (one JSON object per line, e.g. {{\"job\": \"job.json\"}})")
    return items
