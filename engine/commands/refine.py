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

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise EngineError(f"cannot read job file {path}: {error.strerror or error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise EngineError(
            f"job file {path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); "
            "write it again from the add-on"
        ) from None
    try:
        return Job.from_dict(data)
    except JobFormatError as error:
        raise EngineError(f"job file {path}: {error}") from None


def _write_atomically(path: Path, data: dict) -> None:
    folder = path.resolve().parent
    if not folder.is_dir():
        raise EngineError(f"cannot write {path}: folder {folder} does not exist")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=1)
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
    _write_atomically(args.output, result.to_dict())
    emit("done", output=str(args.output), frames=len(result.frames), wall_time_s=round(result.wall_time_s, 3))
    return 0
