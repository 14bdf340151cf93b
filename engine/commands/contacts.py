"""``python -m engine contacts IMAGE --people N -o contacts.json``: ask a multimodal model
which body parts touch, parse and summarise its answers, write a contacts file.

Stdout: one ``{"event": "sample", "done": k, "total": N}`` line per finished sample, then one
``{"event": "contacts", ...}`` summary line. On failure one ``{"event": "error"}`` line, exit
code 2 and no contacts file (it is written atomically at the very end, flushed to disk before
it takes its name). SIGTERM or SIGINT end it with an ``error`` line too (exit 143 or 130), and
no contacts file.

Time: ``--timeout`` is the total time one request may take, ``--deadline`` the time the whole
command may spend on the endpoint, retries and waits included (default 300 s).

Size: each raw answer is stored at most 40,000 characters long (the parser reads no further;
the file lists what was cut), and the summary line carries at most 20 notes.

Replay: ``--replay FILE`` reads the answers from a replay file (``engine.lmm.replay``, the
bundled examples' answers) instead of asking an endpoint: no key, network or cache; the first
``--samples`` answers then take exactly the live path (parsing, aggregation, back-off, the
contacts file, whose model is "replay").

The API key is read from the environment (``OPENAI_API_KEY`` or the variable named by
``--api-key-env``), never from the command line, where process lists would show it. An
endpoint other than OpenAI's may run without a key (a placeholder is sent)."""

from __future__ import annotations

import argparse
import os
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

from engine.commands.events import emit
from engine.errors import EngineError

NAME = "contacts"
HELP = "Ask a multimodal model which body parts touch in an image; write a contacts file."

KEYLESS_PLACEHOLDER = "no-key"
REPLAY_MODEL = "replay"
DEFAULT_DEADLINE_S = 300.0
MAX_NOTES_PRINTED = 20
MAX_NOTE_CHARS = 300


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from engine.lmm import DEFAULT_BASE_URL, DEFAULT_MODEL

    parser.add_argument("image", help="reference image (JPEG, PNG, ...)")
    parser.add_argument("--people", type=int, choices=(1, 2), required=True, help="number of people")
    parser.add_argument("--samples", type=int, default=20, help="responses to sample (default 20)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})")
    parser.add_argument(
        "--base-url",
        default=os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
        help="OpenAI-compatible endpoint, e.g. http://localhost:11434/v1 for Ollama "
        f"(default: $OPENAI_BASE_URL or {DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="name of the environment variable holding the API key (default OPENAI_API_KEY)",
    )
    parser.add_argument(
        "--box",
        action="extend",
        nargs="+",
        default=[],
        metavar="x0,y0,x1,y1",
        help="pixel box around each person (Person 1 first; top-left origin, upright image): the "
        "image is cropped to the boxes and each is outlined (red, blue) for the model",
    )
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-tokens", type=int, default=500, help="token limit per response")
    parser.add_argument("--max-side", type=int, default=1024, help="longest image side sent, pixels")
    parser.add_argument("--cache-dir", default=None, help="response cache folder (default ~/.cache/prosepose/lmm)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds one request may take in total, from sending it to the last byte of the answer "
        "(default 120)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=DEFAULT_DEADLINE_S,
        help="seconds the whole command may wait for the endpoint, all requests, retries and their "
        f"waits together (default {DEFAULT_DEADLINE_S:g} = {DEFAULT_DEADLINE_S / 60:g} minutes)",
    )
    parser.add_argument("--retries", type=int, default=4, help="tries after the first on 429/5xx/timeouts")
    parser.add_argument(
        "--backoff", type=float, default=1.0, help="seconds before the first retry; doubles each time"
    )
    parser.add_argument(
        "--empty-backoff",
        type=int,
        default=None,
        metavar="T",
        help="back off (use no language-model contact) when T or more answers are empty; "
        "0 = never (default: half of the answers, rounded up)",
    )
    parser.add_argument(
        "--replay",
        default=None,
        metavar="FILE",
        help="read the answers from this replay file (schemas/replay.md, e.g. an example's answers.json) "
        "instead of asking a model; no key or network is used",
    )
    parser.add_argument("-o", "--output", required=True, help="contacts file to write (JSON)")


def _api_key(env_name: str, base_url: str) -> str:
    key = os.environ.get(env_name, "").strip()
    if key:
        return key
    if "api.openai.com" in base_url:
        raise EngineError(
            f"no API key: set the environment variable {env_name} (or name another one with "
            "--api-key-env), or use --base-url for a local endpoint"
        )
    return KEYLESS_PLACEHOLDER


def _replay(args: argparse.Namespace):
    """The replay file's answers, checked against the command's people and samples."""
    from engine.lmm.replay import ReplayError, load_replay

    try:
        replay = load_replay(args.replay)
    except ReplayError as error:
        raise EngineError(str(error)) from None
    if replay.num_people != args.people:
        raise EngineError(
            f"replay file {args.replay}: its answers are about {replay.num_people} "
            f"{'person' if replay.num_people == 1 else 'people'}, the command asks about {args.people}"
        )
    if len(replay.texts) < args.samples:
        raise EngineError(
            f"replay file {args.replay}: {len(replay.texts)} answers, fewer than the {args.samples} samples asked for "
            "(lower the number of samples)"
        )
    return replay


class _Stopped(Exception):
    """SIGTERM or SIGINT arrived."""


def _stop(signum, _frame) -> None:
    raise _Stopped(signal.Signals(signum).name)


def run(args: argparse.Namespace) -> int:
    deadline_at = time.monotonic() + args.deadline if args.deadline > 0 else None
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _run(args, deadline_at)
    except _Stopped as stopped:
        name = str(stopped)
        emit("error", message=f"stopped by {name}; no contacts file was written")
        return 130 if name == "SIGINT" else 143
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _printed_notes(notes) -> dict:
    """At most MAX_NOTES_PRINTED notes, each at most MAX_NOTE_CHARS long, and how many were left
    out: a flood of dropped rows must not make a huge progress line."""
    shown = [note if len(note) <= MAX_NOTE_CHARS else note[: MAX_NOTE_CHARS - 3] + "..." for note in notes[:MAX_NOTES_PRINTED]]
    return {"notes": shown, "notes_omitted": max(0, len(notes) - MAX_NOTES_PRINTED)}


def _run(args: argparse.Namespace, deadline_at: float | None) -> int:
    from engine.contacts.constraints import backoff_threshold, objective_from_samples, summarize
    from engine.contacts.file import ContactsFile, TokenUsage, cap_responses
    from engine.lmm.cache import ResponseCache, cache_key, default_cache_dir
    from engine.lmm.client import ClientSettings, LmmError, SamplingRequest, sample_responses
    from engine.lmm.image import ImageError, encode_image, parse_box
    from engine.lmm.parser import parse_response
    from engine.lmm.prompts import build_prompt

    if args.samples < 1:
        raise EngineError("--samples must be at least 1")
    if args.max_tokens < 1 or args.timeout <= 0 or args.retries < 0 or args.backoff < 0 or args.deadline <= 0:
        raise EngineError("--max-tokens, --timeout and --deadline must be positive, --retries and --backoff >= 0")
    if not 0 <= args.temperature <= 2:
        raise EngineError("--temperature must be between 0 and 2")
    if args.empty_backoff is not None and args.empty_backoff < 0:
        raise EngineError("--empty-backoff must be >= 0 (0 = never back off)")
    if len(args.box) > args.people:
        raise EngineError(f"{len(args.box)} boxes for {args.people} people: give at most one per person")
    output = Path(args.output)
    if not output.parent.is_dir():
        raise EngineError(f"the folder of the output file {output} does not exist")
    replay = _replay(args) if args.replay else None
    # A replay asks no endpoint, so it needs no key.
    key = None if replay is not None else _api_key(args.api_key_env, args.base_url)
    try:
        boxes = tuple(parse_box(text) for text in args.box)
        image = encode_image(args.image, boxes, max_side=args.max_side)
    except ImageError as error:
        raise EngineError(str(error)) from None

    prompt = build_prompt(args.people, boxes=len(boxes))
    request = SamplingRequest(
        prompt=prompt,
        image_data_url=image.data_url,
        samples=args.samples,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
    )
    settings = ClientSettings(
        model=args.model,
        base_url=args.base_url,
        timeout_s=args.timeout,
        retries=args.retries,
        backoff_base_s=args.backoff,
        deadline_s=args.deadline,
    )
    cache = None if args.no_cache or replay is not None else ResponseCache(args.cache_dir or default_cache_dir())
    entry_key = cache_key(
        request, image_sha256=image.sha256, boxes=boxes, model=args.model, base_url=args.base_url
    )
    cached = cache.load(entry_key, args.samples) if cache is not None else None
    if replay is not None:
        texts, cut = cap_responses(replay.texts[: args.samples])
        usage, requests = TokenUsage(), 0
        for done in range(1, len(texts) + 1):
            emit("sample", done=done, total=args.samples)
    elif cached is not None:
        texts, usage, requests = cached.texts, cached.usage, 0
        texts, cut = cap_responses(texts)
        cut = cached.cut or cut
        for done in range(1, len(texts) + 1):
            emit("sample", done=done, total=args.samples)
    else:
        try:
            sampled = sample_responses(
                request,
                settings,
                key,
                on_sample=lambda done, total: emit("sample", done=done, total=total),
                deadline_at=deadline_at,
            )
        except LmmError as error:
            raise EngineError(str(error)) from None
        usage, requests = sampled.usage, sampled.requests
        texts, cut = cap_responses(sampled.texts)  # what is kept, and what the endpoint sent
        if cache is not None:
            cache.store(entry_key, texts, usage, cut)

    samples = tuple(parse_response(text, args.people) for text in texts)
    summary = summarize(samples, args.people)
    objective = objective_from_samples(samples, args.people, empty_backoff=args.empty_backoff)
    contacts = ContactsFile(
        image_sha256=image.sha256,
        num_people=args.people,
        model=REPLAY_MODEL if replay is not None else args.model,
        base_url=f"replay:{replay.path.resolve()}" if replay is not None else args.base_url,
        prompt_id=prompt.prompt_id,
        samples_requested=args.samples,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        boxes=boxes,
        raw_responses=tuple(texts),
        samples=samples,
        summary=summary,
        usage=usage,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        empty_backoff=backoff_threshold(args.empty_backoff, len(samples)),
        backed_off=objective.backed_off,
        cut_responses=cut,
    )
    try:
        contacts.write(output)
    except OSError as error:
        raise EngineError(f"cannot write {output}: {error.strerror or error}") from None
    emit(
        "contacts",
        path=str(output),
        samples=len(samples),
        empty=sum(1 for s in samples if s.empty),
        empty_backoff=contacts.empty_backoff,
        constraints=len(summary),
        backed_off=objective.backed_off,
        **_printed_notes(list(objective.notes)),
        cut_responses=len(cut),
        requests=requests,
        cached=cached is not None,
        usage=usage.to_dict(),
        top=[{"key": row.key, "label": row.label, "count": row.count} for row in summary[:10]],
    )
    return 0
