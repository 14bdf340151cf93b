"""The bundled demo scenes (``examples/<name>/``): reading and checking them.

An example folder holds three files, all data (JSON and a PNG; nothing is executed or
unpickled):

* ``scene.json``: what the scene is and the poses, in the engine's job convention
  (``engine.refine.job.PersonPose``: a unit quaternion (w, x, y, z) per joint in its rest frame,
  the root translation in metres, the Anny shape), for each person the *initial* pose (what a
  pose regressor would give: the contact open) and the *ground truth* the reference image was
  rendered from; the ground-truth contacts as (person, region, person, region), 0-based persons;
  and the camera of the pictures;
* ``answers.json``: 20 example answers in the format real models write, as a replay file
  (``engine.lmm.replay``);
* ``reference.png``: the reference image, rendered by the project with Blender from the ground
  truth.

``tools/make_examples.py`` writes them; ``tools/demo/run.py`` (``make demo``) reads them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.body.regions import GROUND, MESH_REGIONS
from engine.refine.job import JobFormatError, PersonPose

EXAMPLE_FORMAT = "prosepose-example"
EXAMPLE_VERSION = 1
SCENE_FILE = "scene.json"
ANSWERS_FILE = "answers.json"
IMAGE_FILE = "reference.png"
MAX_SCENE_BYTES = 2 * 1024 * 1024
_KEYS = ("format", "version", "name", "title", "description", "contact_type", "seed", "num_people", "contacts",
         "people", "camera", "made_by")
_PERSON_KEYS = ("name", "initial", "ground_truth")


class ExampleError(Exception):
    """An example folder cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Camera:
    """Where the pictures look from: the azimuth (degrees about z, 0 = from -y, the front of a
    person facing -y, 90 = from +x) and the elevation above the horizon (degrees)."""

    azimuth_deg: float
    elevation_deg: float


@dataclass(frozen=True)
class ExamplePerson:
    name: str
    initial: PersonPose
    ground_truth: PersonPose


@dataclass(frozen=True)
class Example:
    folder: Path
    name: str
    title: str
    description: str
    contact_type: str
    seed: int
    num_people: int
    # Ground-truth contacts: (person_a, region_a, person_b, region_b), persons 0-based.
    contacts: tuple[tuple[int, str, int, str], ...]
    people: tuple[ExamplePerson, ...]
    camera: Camera

    @property
    def answers_path(self) -> Path:
        return self.folder / ANSWERS_FILE

    @property
    def image_path(self) -> Path:
        return self.folder / IMAGE_FILE

    def contact_label(self, contact: tuple[int, str, int, str]) -> str:
        a, ra, b, rb = contact
        if rb == GROUND:
            return f"P{a + 1} {ra.replace('_', ' ')} - ground"
        return f"P{a + 1} {ra.replace('_', ' ')} - P{b + 1} {rb.replace('_', ' ')}"


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) > 1e6:
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where} must be a non-empty string")
    return value


def _check_keys(data: Any, keys: tuple[str, ...], where: str) -> dict:
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(keys))
    missing = [k for k in keys if k not in data]
    if unknown or missing:
        raise ValueError("; ".join(filter(None, (f"{where} has unknown keys {unknown}" if unknown else "",
                                                 f"{where} is missing keys {missing}" if missing else ""))))
    return data


def _contact(value: Any, num_people: int, where: str) -> tuple[int, str, int, str]:
    if not isinstance(value, list) or len(value) != 4:
        raise ValueError(f"{where} must be [person_a, region_a, person_b, region_b]")
    a, ra, b, rb = value
    for person, label in ((a, "person_a"), (b, "person_b")):
        if isinstance(person, bool) or not isinstance(person, int) or not 0 <= person < num_people:
            raise ValueError(f"{where}: {label} must be 0{' or 1' if num_people == 2 else ''}, got {person!r}")
    if ra not in MESH_REGIONS:
        raise ValueError(f"{where}: {ra!r} is not a region")
    if rb != GROUND and rb not in MESH_REGIONS:
        raise ValueError(f"{where}: {rb!r} is not a region or 'ground'")
    return a, ra, b, rb


def _parse(folder: Path, data: Any) -> Example:
    data = _check_keys(data, _KEYS, "the scene")
    if data["format"] != EXAMPLE_FORMAT:
        raise ValueError(f"format is {data['format']!r}, expected {EXAMPLE_FORMAT!r}")
    if data["version"] != EXAMPLE_VERSION:
        raise ValueError(f"version {data['version']!r} is not supported (this project reads version {EXAMPLE_VERSION})")
    num_people = data["num_people"]
    if num_people not in (1, 2) or isinstance(num_people, bool):
        raise ValueError(f"num_people must be 1 or 2, got {num_people!r}")
    seed = data["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if not isinstance(data["contacts"], list) or not data["contacts"]:
        raise ValueError("contacts must be a non-empty list")
    contacts = tuple(_contact(c, num_people, f"contacts[{i}]") for i, c in enumerate(data["contacts"]))
    if not isinstance(data["people"], list) or len(data["people"]) != num_people:
        raise ValueError(f"people must list {num_people} person(s)")
    people = []
    for index, raw in enumerate(data["people"]):
        where = f"people[{index}]"
        raw = _check_keys(raw, _PERSON_KEYS, where)
        try:
            initial = PersonPose.from_dict(raw["initial"], f"{where}.initial")
            truth = PersonPose.from_dict(raw["ground_truth"], f"{where}.ground_truth")
        except JobFormatError as error:
            raise ValueError(str(error)) from None
        people.append(ExamplePerson(_text(raw["name"], f"{where}.name"), initial, truth))
    camera = _check_keys(data["camera"], ("azimuth_deg", "elevation_deg"), "camera")
    for key in ("name", "title", "description", "contact_type", "made_by"):
        _text(data[key], key)
    if data["name"] != folder.name:
        raise ValueError(f"name {data['name']!r} is not the folder's name {folder.name!r}")
    return Example(
        folder=folder, name=data["name"], title=data["title"], description=data["description"],
        contact_type=data["contact_type"], seed=seed, num_people=num_people, contacts=contacts, people=tuple(people),
        camera=Camera(_number(camera["azimuth_deg"], "camera.azimuth_deg"), _number(camera["elevation_deg"], "camera.elevation_deg")),
    )


def load_example(folder: str | Path) -> Example:
    """The example in ``folder``, checked (its scene file field by field, the answers file as a
    replay file, the image present)."""
    from engine.lmm.replay import ReplayError, load_replay

    folder = Path(folder)
    path = folder / SCENE_FILE
    try:
        if path.stat().st_size > MAX_SCENE_BYTES:
            raise ExampleError(f"{path}: larger than an example's scene file ({MAX_SCENE_BYTES} bytes); is it the right file?")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ExampleError(f"{path}: cannot read it ({error.strerror or error})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExampleError(f"{path}: not valid JSON ({error})") from None
    try:
        example = _parse(folder, data)
    except ValueError as error:
        raise ExampleError(f"{path}: {error}") from None
    try:
        replay = load_replay(example.answers_path)
    except ReplayError as error:
        raise ExampleError(str(error)) from None
    if replay.num_people != example.num_people:
        raise ExampleError(f"{example.answers_path}: answers about {replay.num_people} people, the scene has {example.num_people}")
    if not example.image_path.is_file():
        raise ExampleError(f"{example.image_path}: the reference image is missing (tools/make_examples.py renders it)")
    return example


def example_folders(root: str | Path) -> list[Path]:
    """The example folders under ``root`` (those with a scene file), by name."""
    return sorted(p for p in Path(root).iterdir() if (p / SCENE_FILE).is_file())
