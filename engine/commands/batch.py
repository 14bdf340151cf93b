"""``python -m engine batch MANIFEST -o OUT_DIR``: refine many jobs on Ray (docs/batch.md).

The manifest is JSON Lines, one item a line (``engine.batch.manifest``). Ray starts embedded
on this machine (one worker per core) or, with ``--address``, joins a running cluster. Each
item's result is written to ``OUT_DIR/results/<id>.result.json`` as it finishes, its record to
``OUT_DIR/items/<id>.json``; ``OUT_DIR/report.json`` and ``report.md`` at the end. A rerun of
the same command skips the items already done (same content: job, image, ground truth).

Stdout: JSON lines (``batch``, ``workers``, ``item_start``, ``item`` with done, failed, rate
and ETA, ``retry``, then ``done`` or ``error``); stderr: the same progress for people. SIGINT
(Ctrl-C) or SIGTERM stop it: the running items are dropped, every file already written is
whole, the report says what is left, and the exit code is 130 (143)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from engine.commands.events import emit
from engine.errors import EngineError

NAME = "batch"
HELP = "refine the jobs of a manifest (JSON Lines) on Ray, on this machine or a cluster; resumable"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, help="JSON Lines file, one work item a line (docs/batch.md)")
    parser.add_argument("-o", "--out-dir", type=Path, required=True, help="folder for results, records and the report")
    parser.add_argument(
        "--address",
        default=None,
        help="join a running Ray cluster: 'auto' (the cluster started on this machine), HOST:PORT of its head, "
        "or ray://HOST:10001 (Ray Client); default: start Ray embedded on this machine",
    )
    parser.add_argument("--workers", type=int, default=None,
                        help="refine workers (default: one per core of this machine or of the cluster)")
    parser.add_argument("--max-attempts", type=int, default=3,
                        help="tries of an item whose worker dies (default 3); a failing job is not retried")
    parser.add_argument("--ship-code", choices=("auto", "yes", "no"), default="auto",
                        help="send this engine's code to the workers (default: yes with --address, no embedded)")
    lmm = parser.add_argument_group("items with a reference image (the contacts step)")
    lmm.add_argument("--lmm-concurrency", type=int, default=4,
                     help="language-model requests in flight at once over the whole run (default 4)")
    lmm.add_argument("--model", default=None, help="model name (default: the contacts command's)")
    lmm.add_argument("--base-url", default=None,
                     help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL or the contacts command's)")
    lmm.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    lmm.add_argument("--samples", type=int, default=20, help="answers asked per image (default 20)")
    lmm.add_argument("--lmm-cache-dir", default=None, help="response cache folder (default ~/.cache/prosepose/lmm)")
    lmm.add_argument("--lmm-deadline", type=float, default=300.0, help="seconds one image's contacts step may take")


class _StopFlag:
    def __init__(self) -> None:
        self.signal_name: str | None = None

    def __call__(self, signum, _frame) -> None:
        self.signal_name = signal.Signals(signum).name

    def should_stop(self) -> bool:
        return self.signal_name is not None


class _HumanProgress:
    """The progress as a line on stderr (redrawn in place on a terminal)."""

    def __init__(self) -> None:
        self.in_place = sys.stderr.isatty()

    def __call__(self, event: str, fields: dict) -> None:
        if event == "batch":
            text = f"batch: {fields['items']} items, {fields['to_run']} to run, {fields['resumed']} done by an earlier run"
        elif event == "workers":
            text = f"batch: {len(fields['workers'])} workers ({fields['address']})"
        elif event == "item":
            eta = fields["eta_s"]
            eta_text = "-" if eta is None else time.strftime("%H:%M:%S", time.gmtime(eta))
            text = (f"[{fields['finished']}/{fields['total']}] done {fields['done']}, failed {fields['failed']}, "
                    f"{fields['items_per_s']:.2f} items/s, ETA {eta_text}; {fields['id']} {fields['status']}")
            if fields["message"]:
                text += f": {fields['message']}"
        elif event == "retry":
            text = f"{fields['id']}: {fields['message']}"
        else:
            return
        if self.in_place and event == "item" and not fields["message"]:
            sys.stderr.write("\r\x1b[K" + text)
        else:
            sys.stderr.write(("\n" if self.in_place else "") + text + "\n")
        sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    from engine.batch.run import BatchSettings, LmmSettings, _import_ray, run_batch

    _import_ray(embedded=args.address is None)  # before anything else: without Ray, say how to install it
    if args.workers is not None and args.workers < 1:
        raise EngineError("--workers must be at least 1")
    if args.max_attempts < 1 or args.lmm_concurrency < 1 or args.samples < 1 or args.lmm_deadline <= 0:
        raise EngineError("--max-attempts, --lmm-concurrency, --samples and --lmm-deadline must be positive")
    from engine.lmm import DEFAULT_BASE_URL, DEFAULT_MODEL

    settings = BatchSettings(
        manifest=args.manifest,
        out_dir=args.out_dir,
        address=args.address,
        workers=args.workers,
        max_attempts=args.max_attempts,
        ship_code={"auto": None, "yes": True, "no": False}[args.ship_code],
        lmm=LmmSettings(
            model=args.model or DEFAULT_MODEL,
            base_url=args.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
            samples=args.samples,
            api_key_env=args.api_key_env,
            cache_dir=args.lmm_cache_dir,
            concurrency=args.lmm_concurrency,
            deadline_s=args.lmm_deadline,
        ),
    )
    human = _HumanProgress()
    # Ray prints notices (a worker that died, ...) on sys.stdout; this command's stdout is its
    # JSON lines, so while Ray runs sys.stdout is stderr and the lines go to the real stdout.
    events_out = sys.stdout

    def progress(event: str, fields: dict) -> None:
        events_out.write(json.dumps({"event": event, **fields}) + "\n")
        events_out.flush()
        human(event, fields)

    stop = _StopFlag()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    sys.stdout = sys.stderr
    try:
        outcome = run_batch(settings, progress, stop.should_stop)
    finally:
        sys.stdout = events_out
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    report = outcome.report
    paths = {"report": str(args.out_dir / "report.json"), "report_md": str(args.out_dir / "report.md")}
    if outcome.interrupted:
        message = (f"stopped by {stop.signal_name}: {report['done']} of {report['items']} items done, "
                   f"{report['not_run']} not run; run the same command again to finish")
        emit("error", message=message, **paths)
        sys.stderr.write(message + "\n")
        return 130 if stop.signal_name == "SIGINT" else 143
    emit("done", items=report["items"], done=report["done"], failed=report["failed"], resumed=report["resumed"],
         wall_time_s=report["run"]["wall_s"], metrics=report["metrics"], **paths)
    sys.stderr.write(f"batch: {report['done']} done, {report['failed']} failed of {report['items']}; "
                     f"report in {paths['report_md']}\n")
    return 1 if report["failed"] else 0
