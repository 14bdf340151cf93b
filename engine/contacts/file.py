"""The contacts file: what ``python -m engine contacts`` writes and the add-on reads.

One JSON object (schema ``schemas/contacts.schema.json``): where the constraints came from
(image hash, model, endpoint, prompt id, sampling settings), every raw LMM response, each
response's parsed constraint set with its dropped rows, the summary table and token usage.
It never holds an API key.

Version 2 (version 1 is refused: run the contacts step again): summary rows keep the cells in
the order the answers wrote them (part A is Person 1's part as answered), and the file records
the back-off count used (``empty_backoff``, 0 = never) and whether it backed off.

Version 3 (version 2 is still read, as a file in which nothing was cut): a raw response is stored
at most ``response_char_limit`` characters long (40,000, where the parser stops reading too), and
``cut_responses`` lists each response that was cut, with its full length, so a huge answer
cannot make a huge file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.contacts.constraints import ParsedSample, SummaryRow
from engine.files import atomic_file

CONTACTS_SCHEMA_VERSION = 3
READABLE_VERSIONS = (2, 3)
# What is stored of one raw response: the parser reads no further either.
MAX_STORED_RESPONSE_CHARS = 40_000

_FIELDS = (
    "schema_version",
    "image_sha256",
    "num_people",
    "model",
    "base_url",
    "prompt_id",
    "samples_requested",
    "temperature",
    "max_tokens",
    "boxes",
    "raw_responses",
    "samples",
    "summary",
    "empty_backoff",
    "backed_off",
    "usage",
    "created",
    "response_char_limit",
    "cut_responses",
)
_FIELDS_V2 = _FIELDS[:-2]


def cap_responses(texts, limit: int = MAX_STORED_RESPONSE_CHARS) -> tuple[tuple[str, ...], tuple[tuple[int, int], ...]]:
    """The texts cut to ``limit`` characters, and (index, full length) of each one cut."""
    texts = tuple(texts)
    cut = tuple((i, len(text)) for i, text in enumerate(texts) if len(text) > limit)
    return tuple(text[:limit] for text in texts), cut


def _check_keys(kind: str, data: Any, fields: tuple[str, ...]) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{kind} must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{kind} has unknown keys {unknown}")
    missing = [key for key in fields if key not in data]
    if missing:
        raise ValueError(f"{kind} is missing keys {missing}")


@dataclass(frozen=True)
class TokenUsage:
    """Tokens billed, summed over every request of one contacts run."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: "TokenUsage") -> "TokenUsage":
        return TokenUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "TokenUsage":
        _check_keys("usage", data, ("prompt_tokens", "completion_tokens", "total_tokens"))
        return cls(**{key: int(value) for key, value in data.items()})


Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class ContactsFile:
    """Contacts from one image. ``boxes`` are the per-person crop boxes in image pixels
    (x0, y0, x1, y1), empty when none were given. ``samples[i]`` is the parse of
    ``raw_responses[i]``. ``empty_backoff`` is the back-off count t in effect (by default
    half of the answers, rounded up; 0 = never) and ``backed_off`` whether at least t answers
    were empty. ``created`` is an ISO 8601 UTC time stamp."""

    image_sha256: str
    num_people: int
    model: str
    base_url: str
    prompt_id: str
    samples_requested: int
    temperature: float
    max_tokens: int
    boxes: tuple[Box, ...]
    raw_responses: tuple[str, ...]
    samples: tuple[ParsedSample, ...]
    summary: tuple[SummaryRow, ...]
    usage: TokenUsage
    created: str
    empty_backoff: int
    backed_off: bool
    response_char_limit: int = MAX_STORED_RESPONSE_CHARS
    cut_responses: tuple[tuple[int, int], ...] = ()
    schema_version: int = CONTACTS_SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version not in READABLE_VERSIONS:
            raise ValueError(
                f"contacts file has schema version {self.schema_version!r}; this engine reads "
                f"version {CONTACTS_SCHEMA_VERSION}: run the contacts step again"
            )
        if self.num_people not in (1, 2):
            raise ValueError(f"contacts file: num_people must be 1 or 2, not {self.num_people!r}")
        if len(self.raw_responses) != len(self.samples):
            raise ValueError("contacts file: raw_responses and samples differ in length")
        if len(self.image_sha256) != 64:
            raise ValueError("contacts file: image_sha256 must be 64 hex digits")
        for box in self.boxes:
            if len(box) != 4:
                raise ValueError(f"contacts file: a box has 4 numbers, got {box!r}")
        if self.empty_backoff < 0:
            raise ValueError(f"contacts file: empty_backoff must be >= 0, not {self.empty_backoff!r}")
        if any(len(text) > self.response_char_limit for text in self.raw_responses):
            raise ValueError(
                f"contacts file: a raw response is longer than response_char_limit ({self.response_char_limit}); "
                "cut it with cap_responses"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "image_sha256": self.image_sha256,
            "num_people": self.num_people,
            "model": self.model,
            "base_url": self.base_url,
            "prompt_id": self.prompt_id,
            "samples_requested": self.samples_requested,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "boxes": [list(box) for box in self.boxes],
            "raw_responses": list(self.raw_responses),
            "samples": [sample.to_dict() for sample in self.samples],
            "summary": [row.to_dict() for row in self.summary],
            "empty_backoff": self.empty_backoff,
            "backed_off": self.backed_off,
            "usage": self.usage.to_dict(),
            "created": self.created,
            "response_char_limit": self.response_char_limit,
            "cut_responses": [{"index": index, "chars": chars} for index, chars in self.cut_responses],
        }

    @classmethod
    def from_dict(cls, data: Any) -> "ContactsFile":
        version = data.get("schema_version") if isinstance(data, dict) else None
        _check_keys("contacts file", data, _FIELDS_V2 if version == 2 else _FIELDS)
        if data["schema_version"] not in READABLE_VERSIONS or isinstance(data["schema_version"], bool):
            raise ValueError(
                f"contacts file has schema version {data['schema_version']!r}; this engine "
                f"reads version {CONTACTS_SCHEMA_VERSION}: run the contacts step again"
            )
        return cls(
            schema_version=CONTACTS_SCHEMA_VERSION,  # a version 2 file is version 3 with nothing cut
            image_sha256=str(data["image_sha256"]),
            num_people=int(data["num_people"]),
            model=str(data["model"]),
            base_url=str(data["base_url"]),
            prompt_id=str(data["prompt_id"]),
            samples_requested=int(data["samples_requested"]),
            temperature=float(data["temperature"]),
            max_tokens=int(data["max_tokens"]),
            boxes=tuple(tuple(int(v) for v in box) for box in data["boxes"]),
            raw_responses=tuple(str(text) for text in data["raw_responses"]),
            samples=tuple(ParsedSample.from_dict(sample) for sample in data["samples"]),
            summary=tuple(SummaryRow.from_dict(row) for row in data["summary"]),
            empty_backoff=int(data["empty_backoff"]),
            backed_off=bool(data["backed_off"]),
            usage=TokenUsage.from_dict(data["usage"]),
            created=str(data["created"]),
            response_char_limit=int(data.get("response_char_limit", MAX_STORED_RESPONSE_CHARS)),
            cut_responses=tuple((int(cut["index"]), int(cut["chars"])) for cut in data.get("cut_responses", [])),
        )

    @classmethod
    def read(cls, path: str | os.PathLike) -> "ContactsFile":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"contacts file {path} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"contacts file {path} is not valid JSON: {error}") from None
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError, KeyError) as error:
            raise ValueError(f"contacts file {path}: {error}") from None

    def write(self, path: str | os.PathLike) -> None:
        """Atomic: a temporary file in the same folder, flushed to disk, then ``os.replace``; a
        failure leaves any previous file untouched."""
        path = Path(path)
        text = json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n"
        with atomic_file(path, "w", encoding="utf-8") as stream:
            stream.write(text)
