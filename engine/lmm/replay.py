"""Replay answers: a response source that reads language-model answers from a file instead of
asking an endpoint (``python -m engine contacts IMAGE --replay FILE``).

The bundled demo scenes (``examples/``) ship such a file, so the whole method runs on a fresh
machine with no API key or network; the texts then go through exactly the live path (the cap on
stored length, the parser, aggregation, back-off, the contacts file). The file is data: read as
JSON, checked field by field, never executed. Format (``schemas/replay.md``)::

    {"format": "prosepose-answers", "version": 1,
     "source": "what these answers are (e.g. example answers written for the demo)",
     "num_people": 1 or 2,
     "answers": ["answer text", ...]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

REPLAY_FORMAT = "prosepose-answers"
REPLAY_VERSION = 1
MAX_REPLAY_ANSWERS = 100
# A replay file is a few kilobytes; a huge one is a wrong file, refused before it is parsed.
MAX_REPLAY_BYTES = 4 * 1024 * 1024
_KEYS = ("format", "version", "source", "num_people", "answers")


class ReplayError(Exception):
    """The replay file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class ReplayAnswers:
    path: Path
    source: str
    num_people: int
    texts: tuple[str, ...]


def load_replay(path: str | Path) -> ReplayAnswers:
    """The answers of a replay file, validated (see the module docstring)."""
    path = Path(path)

    def bad(problem: str) -> ReplayError:
        return ReplayError(f"replay file {path}: {problem}")

    try:
        size = path.stat().st_size
    except OSError as error:
        raise bad(f"cannot read it ({error.strerror or error})") from None
    if size > MAX_REPLAY_BYTES:
        raise bad(f"{size} bytes, more than a replay file holds ({MAX_REPLAY_BYTES}); is it the right file?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise bad(f"cannot read it ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise bad("not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise bad(f"not valid JSON (line {error.lineno}: {error.msg})") from None
    if not isinstance(data, dict):
        raise bad(f"must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_KEYS))
    missing = [key for key in _KEYS if key not in data]
    if unknown or missing:
        raise bad("; ".join(filter(None, (f"unknown keys {unknown}" if unknown else "", f"missing keys {missing}" if missing else ""))))
    if data["format"] != REPLAY_FORMAT:
        raise bad(f"format is {data['format']!r}, expected {REPLAY_FORMAT!r}")
    if data["version"] != REPLAY_VERSION or isinstance(data["version"], bool):
        raise bad(f"version {data['version']!r} is not supported (this engine reads version {REPLAY_VERSION})")
    if not isinstance(data["source"], str) or not data["source"].strip():
        raise bad("'source' must say what the answers are (a non-empty string)")
    if data["num_people"] not in (1, 2) or isinstance(data["num_people"], bool):
        raise bad(f"num_people must be 1 or 2, got {data['num_people']!r}")
    answers = data["answers"]
    if not isinstance(answers, list) or not answers:
        raise bad("'answers' must be a non-empty list of answer texts")
    if len(answers) > MAX_REPLAY_ANSWERS:
        raise bad(f"{len(answers)} answers, at most {MAX_REPLAY_ANSWERS}")
    for index, text in enumerate(answers):
        if not isinstance(text, str):
            raise bad(f"answer {index + 1} is {type(text).__name__}, not text")
    return ReplayAnswers(path=path, source=data["source"].strip(), num_people=int(data["num_people"]), texts=tuple(answers))


def write_replay(path: str | Path, texts, num_people: int, source: str) -> None:
    """Write a replay file (the example generator's writer; load_replay reads it back)."""
    data = {"format": REPLAY_FORMAT, "version": REPLAY_VERSION, "source": source, "num_people": int(num_people),
            "answers": list(texts)}
    Path(path).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
