"""``python -m engine refine job.json -o result.json``: refine poses for contact.

Streams JSON lines on stdout (``frame`` at the start of each frame, ``progress`` every few
iterations, ``done`` at the end), writes the result atomically (a temporary file in the
output's folder, then ``os.replace``), and on any failure prints one ``error`` line and exits
non-zero. SIGTERM and SIGINT stop the optimization at the next iteration: no result file is
written and an existing one is left untouched."""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
from pathlib import Path

from engine.commands.events import emit
from engine.errors import EngineError

NAME = "refine"
HELP = "refine the poses of a job file for contact and write a result file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", type=Path, help="job file (schemas/job.schema.json)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="result file to write")


class _StopFlag:
    def __init__(self) -> None:
        self.signal_name: str | None = None

    def __call__(self, signum, _frame) -> None:
        self.signal_name = signal.Signals(signum).name

    def should_stop(self) -> bool:
        return self.signal_name is not None


def _read_job(path: Path):
    from engine.refine.job import Job, JobFormatError
    from engine.refine.limits import PARSE_BYTES_PER_TEXT_BYTE, available_bytes, gigabytes

    if path.is_dir():
        raise EngineError(f"job file {path}: is a folder, not a job file")
    available = available_bytes()
    try:
        size = path.stat().st_size
    except OSError as error:
        raise EngineError(f"cannot read job file {path}: {error.strerror or error}") from None
    if available is not None and size * PARSE_BYTES_PER_TEXT_BYTE > available:
        raise EngineError(
            f"job file {path}: {gigabytes(size)} of JSON needs about {gigabytes(size * PARSE_BYTES_PER_TEXT_BYTE)} "
            f"of memory to read, more than the {gigabytes(available)} available; split the job into smaller ones"
        )
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise EngineError(f"cannot read job file {path}: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EngineError(
            f"job file {path}: not a text file (byte {error.start} is not UTF-8); a job file is JSON "
            "written by the add-on or by schemas/job.md"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise EngineError(
            f"job file {path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            "write it again from the add-on"
        ) from None
    except RecursionError:
        raise EngineError(
            f"job file {path}: its JSON is nested too deeply to be a job (a job is a few levels deep)"
        ) from None
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        raise EngineError(f"job file {path} is not a usable JSON file: {error}") from None
    _check_job_fits(path, data, available)
    try:
        return Job.from_dict(data)
    except JobFormatError as error:
        raise EngineError(f"job file {path}: {error}") from None
    except RecursionError:
        raise EngineError(f"job file {path}: a value is nested too deeply") from None


def _check_job_fits(path: Path, data, available: int | None) -> None:
    """Refuse, before anything starts, a job whose frames will not fit in memory (issue 18)."""
    from engine.refine.limits import estimate_job_bytes, gigabytes, max_frames

    if available is None or not isinstance(data, dict):
        return
    frames, people, body = data.get("frames"), data.get("people"), data.get("body")
    if not isinstance(frames, list) or not isinstance(people, list):
        return  # Job.from_dict names what is wrong
    kind = body.get("kind") if isinstance(body, dict) else None
    kind = kind if isinstance(kind, str) else "anny"
    needed = estimate_job_bytes(len(frames), len(people), kind)
    if needed > available:
        fits = max_frames(len(people), kind, available)
        raise EngineError(
            f"job file {path}: frames: {len(frames)} frames of {len(people)} {kind} "
            f"{'person' if len(people) == 1 else 'people'} need about {gigabytes(needed)} of memory "
            f"(every refined frame is kept until the result is written), more than the {gigabytes(available)} "
            f"available; split it into jobs of at most {fits} frames"
        )


def _check_output(path: Path) -> None:
    """Refuse an output that cannot be written before any work is done: a folder, a missing
    folder, a place where no file can be created (read-only, /proc)."""
    if path.is_dir():
        raise EngineError(f"output {path}: is a folder; give the path of the result file to write")
    folder = path.resolve().parent
    if not folder.is_dir():
        raise EngineError(f"output {path}: its folder {folder} does not exist")
    try:
        handle, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
    except OSError as error:
        raise EngineError(f"output {path}: cannot create a file in {folder} ({error.strerror or error})") from None
    os.close(handle)
    os.unlink(probe)


def _write_atomically(path: Path, data: dict) -> None:
    folder = path.resolve().parent
    if not folder.is_dir():
        raise EngineError(f"cannot write {path}: folder {folder} does not exist")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise EngineError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=1, allow_nan=False)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def run(args: argparse.Namespace) -> int:
    stop = _StopFlag()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _run(args, stop)
    except EngineError:
        raise
    except Exception as error:  # any other failure still ends in one JSON error line
        raise EngineError(f"refinement failed: {type(error).__name__}: {error}") from error
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(args: argparse.Namespace, stop: _StopFlag) -> int:
    job = _read_job(args.job)
    _check_output(args.output)
    import torch

    from engine.body import BodyModelError, load_body
    from engine.refine.optimizer import RefinementStopped
    from engine.refine.run import FrameProgress, JobError, run_job
    from engine.body.region_map import body_regions

    # One thread: the refinement's tensors are small (a few thousand vertices, a hundred
    # joints), so threads mostly add synchronisation, and when the cores are busy (Blender
    # drawing, another job) OpenMP threads that wait for each other stall: on the 2-core
    # benchmark machine one case took 32 s with two threads against 1.6 s with one.
    torch.set_num_threads(1)
    try:
        body = load_body(job.body.kind, job.body.model_path)
    except (BodyModelError, OSError) as error:
        raise EngineError(f"cannot load the {job.body.kind} body: {error}") from None
    regions = body_regions(body)
    emitted_frames: set[int] = set()

    def progress(step: FrameProgress) -> None:
        if step.index not in emitted_frames:
            emitted_frames.add(step.index)
            emit("frame", index=step.index, frame=step.frame, total=len(job.frames))
        p = step.progress
        emit(
            "progress",
            frame=step.frame,
            stage=p.stage,
            iteration=p.iteration,
            total=p.total,
            losses={name: round(value, 6) for name, value in p.losses.items()},
        )

    try:
        result = run_job(job, body, regions, progress=progress, should_stop=stop.should_stop)
    except RefinementStopped:
        emit("error", message=f"stopped by {stop.signal_name}; no result was written")
        return 130 if stop.signal_name == "SIGINT" else 143
    except JobError as error:
        raise EngineError(f"job file {args.job}: {error}") from None
    if stop.should_stop():
        emit("error", message=f"stopped by {stop.signal_name}; no result was written")
        return 130 if stop.signal_name == "SIGINT" else 143
    from engine.refine.job import non_finite_field

    data = result.to_dict()
    bad = non_finite_field(data, "result")
    if bad is not None:  # run_job checks every frame; this guards the whole file
        raise EngineError(f"job file {args.job}: the refinement produced a non-finite number at {bad}; no result was written")
    try:
        _write_atomically(args.output, data)
    except OSError as error:
        raise EngineError(f"cannot write the result {args.output}: {error.strerror or error}") from None
    emit("done", output=str(args.output), frames=len(result.frames), wall_time_s=round(result.wall_time_s, 3))
    return 0
