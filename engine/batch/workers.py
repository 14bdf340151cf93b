"""What runs inside the Ray workers of ``python -m engine batch``.

:class:`RefineWorker` is a long-lived actor: it loads each body model once (the first item
of a kind) and refines item after item in-process with ``engine.refine.run.run_job``, so an
item costs its optimization, not a process start, a torch import and a body load.
:class:`ContactsAsker` is one threaded actor for the whole run that asks the language model
for the items with a reference image, through ``python -m engine contacts`` (the same
prompt, parser, response cache and retry rules as the single-image command); its
concurrency is the run's limit on parallel LMM requests, wherever the refine workers are.

These classes are plain Python: ``engine.batch.run`` makes them Ray actors. They never raise
for a bad item: they return an :class:`ItemOutcome` saying what failed, so one corrupt job
costs its own item only. Ray is not imported here."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from engine.errors import EngineError

ENGINE_PARENT = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class WorkerInfo:
    pid: int
    node: str
    rss_mb: float


@dataclass(frozen=True)
class RefineRequest:
    """What a worker needs for one item; the files' bytes travel with it, so a worker on
    another machine needs no shared folder."""

    item_id: str
    job_label: str  # the job file's path, for messages
    job_bytes: bytes
    lmm_samples: tuple[dict, ...] | None  # from the item's reference image; replaces the job's
    truth_label: str | None
    truth_bytes: bytes | None


@dataclass(frozen=True)
class ItemOutcome:
    item_id: str
    status: Literal["done", "failed"]
    message: str
    result: dict | None  # the result file's content (schemas/result.schema.json)
    frames: list[dict] = field(default_factory=list)  # per frame: constraint distances, evaluation
    evaluation_error: str = ""
    refine_s: float = 0.0  # the worker's time on the item, body loading not included
    body_load_s: float = 0.0  # loading a body model this item was the first to need
    worker: WorkerInfo | None = None


@dataclass(frozen=True)
class ContactsRequest:
    item_id: str
    image_name: str  # the image's file name (its suffix tells the format)
    image_bytes: bytes
    people: int
    boxes: tuple[str, ...]
    model: str
    base_url: str
    samples: int
    api_key_env: str
    cache_dir: str | None
    deadline_s: float


@dataclass(frozen=True)
class ContactsAnswer:
    item_id: str
    ok: bool
    message: str
    contacts_text: str  # the contacts file as written by `python -m engine contacts`
    samples: tuple[dict, ...]
    seconds: float


def resident_mb() -> float:
    """This process's resident memory now (not the peak), in MB."""
    try:
        with open("/proc/self/statm", encoding="ascii") as stream:
            pages = int(stream.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource  # no /proc (macOS): the peak is the best there is

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _load_malloc_trim():
    """glibc's malloc_trim, or None (another C library, another system)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _load_malloc_trim()


def release_free_memory() -> None:
    """Hand the heap's free pages back to the system. Why: an item makes thousands of small
    temporary tensors, and glibc keeps their freed pages, so a worker's resident memory drifts
    by 50-100 MB from item to item (measured: 512-630 MB over 120 items) and a leak could not
    be told from it; trimmed after each item it stays within a few MB (519-524 MB), for about
    2% of the item time."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _describe() -> WorkerInfo:
    return WorkerInfo(pid=os.getpid(), node=socket.gethostname(), rss_mb=round(resident_mb(), 1))


def parse_job(raw: bytes, label: str):
    """A job file's bytes -> Job, with the refine command's messages."""
    from engine.refine.job import Job, JobFormatError

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EngineError(f"job file {label}: not a text file (byte {error.start} is not UTF-8)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise EngineError(f"job file {label} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})") from None
    except (ValueError, RecursionError) as error:
        raise EngineError(f"job file {label} is not a usable JSON file: {error or 'nested too deeply'}") from None
    try:
        return Job.from_dict(data)
    except JobFormatError as error:
        raise EngineError(f"job file {label}: {error}") from None
    except RecursionError:
        raise EngineError(f"job file {label}: a value is nested too deeply") from None


class RefineWorker:
    """One refine worker: keeps bodies loaded between items."""

    def __init__(self) -> None:
        import torch

        # One thread per worker, one worker per core: the reason is engine.commands.refine's
        # (small tensors; waiting OpenMP threads stall when every core is busy).
        torch.set_num_threads(1)
        self._bodies: dict[tuple[str, str | None], tuple[Any, Any]] = {}
        self._load_s = 0.0

    def describe(self) -> WorkerInfo:
        return _describe()

    def _body(self, kind: str, model_path: str | None):
        key = (kind, model_path)
        if key not in self._bodies:
            from engine.body import load_body
            from engine.body.region_map import body_regions
            from engine.errors import BodyModelError

            started = time.perf_counter()
            try:
                body = load_body(kind, model_path)
            except (BodyModelError, OSError) as error:
                raise EngineError(f"cannot load the {kind} body: {error}") from None
            self._bodies[key] = (body, body_regions(body))
            self._load_s += time.perf_counter() - started
        return self._bodies[key]

    def refine(self, request: RefineRequest) -> ItemOutcome:
        started = time.perf_counter()
        self._load_s = 0.0
        try:
            outcome = self._refine(request)
        except EngineError as error:
            outcome = ItemOutcome(request.item_id, "failed", str(error), None)
        except Exception as error:  # a model error must fail its item, not the worker
            outcome = ItemOutcome(request.item_id, "failed", f"refinement failed: {type(error).__name__}: {error}", None)
        release_free_memory()
        spent = time.perf_counter() - started
        return replace(outcome, refine_s=spent - self._load_s, body_load_s=self._load_s, worker=_describe())

    def _refine(self, request: RefineRequest) -> ItemOutcome:
        from engine.refine.job import non_finite_field
        from engine.refine.run import JobError, run_job

        job = parse_job(request.job_bytes, request.job_label)
        if request.lmm_samples is not None:
            job = replace(job, constraints=replace(job.constraints, lmm_samples=request.lmm_samples))
        truth = None
        if request.truth_bytes is not None:
            from engine.batch.manifest import read_ground_truth

            try:
                truth = read_ground_truth(request.truth_bytes.decode("utf-8", "replace"), f"ground truth {request.truth_label}")
            except EngineError as error:
                raise EngineError(str(error)) from None
        body, regions = self._body(job.body.kind, job.body.model_path)
        try:
            result = run_job(job, body, regions)
        except JobError as error:
            raise EngineError(f"job file {request.job_label}: {error}") from None
        data = result.to_dict()
        bad = non_finite_field(data, "result")
        if bad is not None:
            raise EngineError(f"job file {request.job_label}: the refinement produced a non-finite number at {bad}")
        frames = [
            {
                "frame": frame.frame,
                "backed_off": frame.backed_off,
                "constraints": [
                    {"label": c.label, "source": c.source, "before_m": c.before_m, "after_m": c.after_m} for c in frame.constraints
                ],
            }
            for frame in result.frames
        ]
        evaluation_error = ""
        if truth is not None:
            from engine.batch.evaluate import evaluate

            try:
                for entry, evaluation in zip(frames, evaluate(body, regions, job, result, truth)):
                    if evaluation is not None:
                        entry["evaluation"] = evaluation
            except EngineError as error:
                evaluation_error = str(error)
        return ItemOutcome(request.item_id, "done", "", data, frames, evaluation_error)


class ContactsAsker:
    """Asks the language model for one item at a time per thread; the actor's
    ``max_concurrency`` is the run's LMM concurrency limit."""

    def describe(self) -> WorkerInfo:
        return _describe()

    def ask(self, request: ContactsRequest) -> ContactsAnswer:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="prosepose-batch-") as folder:
            image = Path(folder) / f"image{Path(request.image_name).suffix or '.png'}"
            image.write_bytes(request.image_bytes)
            output = Path(folder) / "contacts.json"
            command = [
                sys.executable, "-m", "engine", "contacts", str(image),
                "--people", str(request.people),
                "--samples", str(request.samples),
                "--model", request.model,
                "--base-url", request.base_url,
                "--api-key-env", request.api_key_env,
                "--deadline", f"{request.deadline_s:g}",
                "-o", str(output),
            ]
            if request.cache_dir:
                command += ["--cache-dir", request.cache_dir]
            if request.boxes:
                command += ["--box", *request.boxes]
            try:
                # The contacts command ends itself at its deadline; the margin covers start-up.
                completed = subprocess.run(
                    command, cwd=ENGINE_PARENT, capture_output=True, text=True, timeout=request.deadline_s + 120
                )
            except subprocess.TimeoutExpired:
                return ContactsAnswer(request.item_id, False, "contacts: the contacts step did not end", "", (), 0.0)
            seconds = time.perf_counter() - started
            if completed.returncode != 0 or not output.is_file():
                return ContactsAnswer(request.item_id, False, f"contacts: {_last_error(completed)}", "", (), seconds)
            text = output.read_text(encoding="utf-8")
        samples = tuple(json.loads(text)["samples"])
        return ContactsAnswer(request.item_id, True, "", text, samples, seconds)


def _last_error(completed: subprocess.CompletedProcess) -> str:
    for line in reversed(completed.stdout.splitlines()):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "error":
            return str(event.get("message"))
    tail = (completed.stderr or completed.stdout).strip().splitlines()[-1:] or ["no message"]
    return f"the contacts command exited with {completed.returncode}: {tail[0]}"
