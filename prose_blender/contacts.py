"""Find contacts: ``python -m engine contacts`` on the reference image, then the contacts
file's summary fills the scene's contact list (artist contacts are kept)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import bpy

from .settings import EngineSettings, ProseError, bpy_path_abs
from .tasks import EngineTask, Message, read_json, unique_stem

CONTACTS_SCHEMA_VERSION = 1
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class ContactRow:
    key: str
    part_a: str
    person_a: int  # 1-based
    part_b: str
    person_b: int
    count: int


@dataclass(frozen=True)
class ContactsResult:
    rows: tuple[ContactRow, ...]
    samples_json: str
    sample_count: int
    empty_count: int


def needs_online_access(base_url: str) -> bool:
    """A loopback endpoint never leaves the machine; anything else (or the default) does."""
    host = urlparse(base_url).hostname if base_url else None
    return host not in _LOOPBACK_HOSTS


def parse_contacts(data: dict, people: int) -> ContactsResult:
    def bad(why: str) -> ProseError:
        return ProseError(f"The contacts file is unusable ({why}); run Find contacts again")

    if data.get("schema_version") != CONTACTS_SCHEMA_VERSION:
        raise bad(f"schema_version {data.get('schema_version')!r}, expected {CONTACTS_SCHEMA_VERSION}")
    summary, samples = data.get("summary"), data.get("samples")
    if not isinstance(summary, list) or not isinstance(samples, list):
        raise bad("no summary or samples list")
    if data.get("num_people", people) != people:
        raise bad(f"it is for {data.get('num_people')} people, the scene has {people}")
    rows = []
    for row in summary:
        try:
            rows.append(ContactRow(
                key=str(row["key"]), part_a=str(row["part_a"]), person_a=int(row["person_a"]) + 1,
                part_b=str(row["part_b"]), person_b=int(row["person_b"]) + 1, count=int(row["count"]),
            ))
        except (KeyError, TypeError, ValueError) as error:
            raise bad(f"a summary row lacks {error}") from None
    empty = sum(1 for s in samples if isinstance(s, dict) and not s.get("rows"))
    return ContactsResult(tuple(rows), json.dumps(samples), len(samples), empty)


def apply_contacts(scene: bpy.types.Scene, result: ContactsResult) -> None:
    """Replace the language-model contacts of the list, keep the artist's."""
    prose = scene.prose
    for index in reversed(range(len(prose.contacts))):
        if prose.contacts[index].source == "LMM":
            prose.contacts.remove(index)
    for row in result.rows:
        item = prose.contacts.add()
        item.source = "LMM"
        item.key = row.key
        item.part_a, item.person_a = row.part_a, row.person_a
        item.part_b, item.person_b = row.part_b, row.person_b
        item.count = row.count
        item.enabled = True
    prose.lmm_samples_json = result.samples_json
    prose.lmm_sample_count = result.sample_count
    prose.lmm_empty_count = result.empty_count
    prose.contacts_index = 0


class ContactsTask(EngineTask):
    title = "Find contacts"

    def __init__(self, settings: EngineSettings, scene: bpy.types.Scene, image_path: str, people: int):
        super().__init__(settings)
        self.scene = scene
        self.image_path = image_path
        self.people = people
        self.result: ContactsResult | None = None

    def prepare(self):
        if not self.image_path:
            raise ProseError("No reference image: pick one in the Reference panel")
        image = Path(bpy_path_abs(self.image_path))
        if not image.is_file():
            raise ProseError(f"The reference image {image} does not exist")
        self.image = image
        if self.people not in (1, 2):
            raise ProseError("Pick Person 1 (and Person 2 for two people) in the Subjects panel first")
        if needs_online_access(self.settings.lmm.base_url) and not self.settings.online_access:
            raise ProseError(
                "Online access is disabled: Find contacts sends the image to the language-model "
                "endpoint. Allow it in Preferences > System > Network, or use a local endpoint"
            )
        self.settings.interpreter()
        self.out_path = self.settings.work_dir() / f"{unique_stem('contacts')}.json"

    def commands(self):
        lmm = self.settings.lmm
        argv = [
            "contacts", str(self.image), "--people", str(self.people),
            "--samples", str(lmm.samples), "--temperature", repr(float(lmm.temperature)),
            "--api-key-env", lmm.api_key_env or "OPENAI_API_KEY",
            "--retries", str(lmm.retries), "--timeout", repr(float(lmm.timeout_s)),
            "--cache-dir", str(self.settings.work_dir() / "lmm-cache"),
            "-o", str(self.out_path),
        ]
        if lmm.model:
            argv += ["--model", lmm.model]
        if lmm.base_url:
            argv += ["--base-url", lmm.base_url]
        return [self.engine_argv(*argv)]

    def on_event(self, event):
        if event.get("event") == "sample":
            total = max(1, int(event.get("total", 1)))
            done = int(event.get("done", 0))
            self.progress = min(0.99, done / total)
            self.status_text = f"Find contacts: {done}/{total} answers"

    def collect(self):
        self.result = parse_contacts(read_json(self.out_path, "contacts file"), self.people)

    def apply(self, context):
        apply_contacts(self.scene, self.result)
        found = len(self.result.rows)
        self.messages.append(Message("INFO", f"{found} contact(s) from {self.result.sample_count} answers ({self.result.empty_count} empty)"))
        if self.result.empty_count >= 2:
            self.messages.append(Message("WARNING", "Several answers named no contact: the image may show none reliably"))
