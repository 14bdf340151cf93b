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

CONTACTS_SCHEMA_VERSION = 3
READABLE_CONTACTS_VERSIONS = (2, 3)  # version 3 adds what was cut of over-long answers
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def empty_backoff(prose) -> int | None:
    """The scene's back-off setting as the engine takes it (``--empty-backoff``, a job's
    ``constraints.empty_backoff``): None = half of the answers, a count, or 0 = never."""
    if prose.backoff_mode == "NEVER":
        return 0
    if prose.backoff_mode == "COUNT":
        return int(prose.backoff_count)
    return None


@dataclass(frozen=True)
class ContactRow:
    """One summary row: Person ``person_a``'s ``part_a`` touches Person ``person_b``'s
    ``part_b``, in the order (and with the sides) the answers wrote them."""

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
    backed_off: bool = False


def contact_label(part_a: str, person_a: int, part_b: str, person_b: int) -> str:
    """A list row's text: Person 1's part first, as answered ("P1 right hand - P2 left
    shoulder (front)"); one person's two parts (or a part and the ground) in the order given."""
    if person_a == person_b:
        return f"P{person_a} {part_a} - {part_b}"
    if person_a > person_b:
        part_a, person_a, part_b, person_b = part_b, person_b, part_a, person_a
    return f"P{person_a} {part_a} - P{person_b} {part_b}"


def needs_online_access(base_url: str) -> bool:
    """A loopback endpoint never leaves the machine; anything else (or the default) does."""
    host = urlparse(base_url).hostname if base_url else None
    return host not in _LOOPBACK_HOSTS


def parse_contacts(data: dict, people: int) -> ContactsResult:
    def bad(why: str) -> ProseError:
        return ProseError(f"The contacts file is unusable ({why}); run Find contacts again")

    if data.get("schema_version") not in READABLE_CONTACTS_VERSIONS:
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
    return ContactsResult(tuple(rows), json.dumps(samples), len(samples), empty, bool(data.get("backed_off", False)))


def apply_contacts(scene: bpy.types.Scene, result: ContactsResult) -> bool:
    """Replace the language-model contacts of the list, keep the artist's. An answer that
    names no contact at all (every sample empty or unreadable) keeps the previous list;
    returns False then."""
    prose = scene.prose
    if not result.rows:
        return False
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
    return True


class ContactsTask(EngineTask):
    title = "Find contacts"

    def __init__(self, settings: EngineSettings, scene: bpy.types.Scene, image_path: str, people: int, ask_again: bool = False):
        super().__init__(settings)
        self.ask_again = ask_again
        self.scene = scene
        self.image_path = image_path
        self.people = people
        self.empty_backoff = empty_backoff(scene.prose)
        self.result: ContactsResult | None = None
        self.notes: list[str] = []

    def prepare(self):
        if not self.image_path:
            raise ProseError("No reference image: pick one in the Reference panel")
        image = Path(bpy_path_abs(self.image_path))
        if not image.is_file():
            raise ProseError(f"The reference image {image} does not exist")
        self.image = image
        if self.people not in (1, 2):
            raise ProseError("Pick Person 1 (and Person 2 for two people) in the Subjects panel first")
        replay = self.settings.lmm.replay_file
        if replay and not Path(bpy_path_abs(replay)).is_file():
            raise ProseError(
                f"The replay answers file {bpy_path_abs(replay)} does not exist: fix 'Replay answers' in the "
                "ProsePose preferences, or clear it to ask the language model"
            )
        # A replay reads a file and sends nothing anywhere.
        if not replay and needs_online_access(self.settings.lmm.base_url) and not self.settings.online_access:
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
        if self.empty_backoff is not None:
            argv += ["--empty-backoff", str(self.empty_backoff)]
        if lmm.replay_file:
            argv += ["--replay", bpy_path_abs(lmm.replay_file)]
        if self.ask_again:
            argv.append("--no-cache")  # new answers, not the ones kept for this image
        return [self.engine_argv(*argv)]

    def on_event(self, event):
        if event.get("event") == "sample":
            total = max(1, int(event.get("total", 1)))
            done = int(event.get("done", 0))
            self.progress = min(0.99, done / total)
            self.status_text = f"Find contacts: {done}/{total} answers"
        elif event.get("event") == "contacts":
            self.notes = [str(note) for note in event.get("notes", [])]

    def collect(self):
        self.result = parse_contacts(read_json(self.out_path, "contacts file"), self.people)

    def apply(self, context):
        if not apply_contacts(self.scene, self.result):
            kept = sum(1 for c in self.scene.prose.contacts if c.source == "LMM")
            self.messages.append(Message(
                "WARNING",
                f"No contact added: all {self.result.sample_count} answers were empty or unreadable"
                + (f"; the previous {kept} language-model contact(s) are kept" if kept else "")
                + ". Try 'Ask again' for new answers, or add contacts by hand",
            ))
            for note in self.notes:
                self.messages.append(Message("INFO", note))
            return
        found = len(self.result.rows)
        self.messages.append(Message("INFO", f"{found} contact(s) from {self.result.sample_count} answers ({self.result.empty_count} empty)"))
        if self.result.backed_off:
            self.messages.append(Message(
                "WARNING",
                f"{self.result.empty_count} of {self.result.sample_count} answers were empty: the image may show no "
                "reliable contact, and Refine will use no language-model contact (Back off setting)",
            ))
        for note in self.notes:
            if not self.result.backed_off or "answers were empty" not in note:
                self.messages.append(Message("INFO", note))
