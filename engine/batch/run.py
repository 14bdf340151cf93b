"""The driver of ``python -m engine batch``: reads the manifest, skips the items an earlier
run finished, hands the rest to long-lived Ray workers and writes each item's files as its
answer comes back (the driver is the only writer: a worker on another machine needs no shared
folder, and every file is written whole or not at all).

Ray does the placing, the transport and the failure detection; this loop only keeps each
worker fed (at most ``PREFETCH`` items queued on it, so it never waits for the driver between
items), retries the items of a worker that died on a fresh worker (at most
``max_attempts`` tries per item), and stops cleanly when asked."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from engine.batch.manifest import ManifestItem, read_manifest
from engine.batch.report import (
    ItemRecord,
    ItemStatus,
    RunFigures,
    WorkerUse,
    build_report,
    read_record,
    record_path,
    write_json,
    write_report,
)
from engine.batch.workers import (
    ENGINE_PARENT,
    ContactsAnswer,
    ContactsAsker,
    ContactsRequest,
    ItemOutcome,
    RefineRequest,
    RefineWorker,
    WorkerInfo,
    parse_job,
)
from engine.errors import EngineError

# Items queued on one worker: one running, one waiting, so the worker starts its next item
# while the driver writes the last one's files.
PREFETCH = 2
WAIT_S = 0.2  # how often the loop looks at the stop flag while nothing finishes
WORKER_START_S = 300.0  # a worker that has not started by then is given up (no room on the cluster)

EventSink = Callable[[str, dict], None]


@dataclass(frozen=True)
class LmmSettings:
    """How items with a reference image ask the language model (``python -m engine contacts``'s
    options); ``concurrency`` bounds the requests in flight over the whole run."""

    model: str
    base_url: str
    samples: int = 20
    api_key_env: str = "OPENAI_API_KEY"
    cache_dir: str | None = None
    concurrency: int = 4
    deadline_s: float = 300.0


@dataclass(frozen=True)
class BatchSettings:
    manifest: Path
    out_dir: Path
    lmm: LmmSettings
    address: str | None = None  # None: Ray embedded on this machine
    workers: int | None = None  # None: one per core (of this machine, or of the cluster)
    max_attempts: int = 3  # tries of an item whose worker dies
    # Send the engine's code to the cluster's workers (Ray's py_modules); on by default with
    # --address, where the nodes may not have this checkout.
    ship_code: bool | None = None


@dataclass
class BatchOutcome:
    report: dict
    interrupted: bool


@dataclass
class _Slot:
    actor: Any
    info: WorkerInfo
    running: list = field(default_factory=list)  # ObjectRefs of the items queued on it
    dead: bool = False

    @property
    def name(self) -> str:
        return f"{self.info.node}:{self.info.pid}"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _import_ray(embedded: bool = False):
    if embedded:
        # Ray on Linux would give its own processes the machine's network address and listen on
        # every interface; single-machine mode (Ray's default on macOS and Windows) keeps an
        # embedded Ray on 127.0.0.1. Read when Ray is imported, so set before.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise EngineError(
            "the batch command runs on Ray, which is not installed in this Python environment: "
            "pip install -r requirements/batch.txt (docs/batch.md)"
        ) from None
    return ray


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise EngineError(f"output folder {out_dir}: is a file; give a folder (it is created if missing)")
    try:
        for folder in (out_dir, out_dir / "results", out_dir / "items", out_dir / "contacts"):
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise EngineError(f"output folder {out_dir}: cannot create it ({error.strerror or error})") from None
    if not os.access(out_dir, os.W_OK):
        raise EngineError(f"output folder {out_dir}: cannot write in it")


def finished_record(out_dir: Path, item: ManifestItem) -> ItemRecord | None:
    """The record of an earlier run that finished ``item`` as it is now (same content key,
    result file present), or None."""
    record = read_record(out_dir, item.id)
    if record is None or record.status != "done" or record.key != item.key:
        return None
    if not record.result_file or not (out_dir / record.result_file).is_file():
        return None
    record.resumed = True
    return record


def _connect(ray, settings: BatchSettings) -> tuple[str, int]:
    """Start or join Ray; the address shown in the report and the number of refine workers."""
    ship = settings.ship_code if settings.ship_code is not None else settings.address is not None
    if ship:
        runtime_env = {"py_modules": [str(ENGINE_PARENT / "engine")]}
    else:
        # Workers on this machine import this checkout's engine (they start in another folder).
        path = os.pathsep.join(p for p in (str(ENGINE_PARENT), os.environ.get("PYTHONPATH", "")) if p)
        runtime_env = {"env_vars": {"PYTHONPATH": path}}
    # log_to_driver=False: workers' prints stay in Ray's logs (stdout is this command's JSON
    # lines). ray.init installs its own SIGTERM handler (exit at once): the command's handlers, which
    # stop the run cleanly and write the report, are put back.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if settings.address is None:
            cores = settings.workers or os.cpu_count() or 1
            # "local": a new Ray of this process's own, never the cluster a `ray start` left on
            # this machine (which Ray joins when no address is given). Loopback only.
            ray.init(address="local", num_cpus=cores, include_dashboard=False, _node_ip_address="127.0.0.1",
                     log_to_driver=False, logging_level=logging.WARNING, runtime_env=runtime_env)
            return "embedded", cores
        try:
            ray.init(address=settings.address, log_to_driver=False, logging_level=logging.WARNING, runtime_env=runtime_env)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise EngineError(f"cannot join the Ray cluster at {settings.address}: {error}") from None
    finally:
        if threading.current_thread() is threading.main_thread():
            for sig, handler in handlers.items():
                if handler is not None:
                    signal.signal(sig, handler)
    cores = int(ray.cluster_resources().get("CPU", 0))
    if settings.workers is None and cores < 1:
        raise EngineError(f"the Ray cluster at {settings.address} has no CPU to run workers on")
    return settings.address, settings.workers or cores


class _Driver:
    def __init__(self, ray, settings: BatchSettings, items: list[ManifestItem], emit: EventSink,
                 should_stop: Callable[[], bool]):
        self.ray = ray
        self.settings = settings
        self.out_dir = settings.out_dir
        self.emit = emit
        self.should_stop = should_stop
        self.items = {item.id: item for item in items}
        self.records: dict[str, ItemRecord] = {}
        self.attempts: dict[str, int] = {item.id: 0 for item in items}
        self.samples: dict[str, tuple[dict, ...]] = {}
        self.contacts_files: dict[str, str] = {}
        self.refine_queue: deque[str] = deque()
        self.ask_queue: deque[str] = deque()
        self.running: dict[Any, tuple[_Slot, str]] = {}
        self.asking: dict[Any, str] = {}
        self.use: dict[str, WorkerUse] = {}
        self.slots: list[_Slot] = []
        self.restarted = 0
        self.done = self.failed = 0
        self.started = time.perf_counter()

    # -------------------------------------------------------------------------------- workers

    def _new_slots(self, count: int) -> list[_Slot]:
        """``count`` started workers; fewer when the cluster has no room for them within
        WORKER_START_S (the others are given up, not waited for forever)."""
        actor_class = self.ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(RefineWorker)
        actors = [actor_class.remote() for _ in range(count)]
        pending = {actor.describe.remote(): actor for actor in actors}
        ready, late = self.ray.wait(list(pending), num_returns=len(pending), timeout=WORKER_START_S)
        for ref in late:
            self.ray.kill(pending[ref])
        slots = []
        for ref in ready:
            try:
                slots.append(_Slot(pending[ref], self.ray.get(ref)))
            except self.ray.exceptions.RayError:
                continue  # died while starting: the slot is not there
        return slots

    def start(self, workers: int, need_asker: bool) -> None:
        self.slots = self._new_slots(workers)
        if not self.slots:
            raise EngineError(
                f"no refine worker started within {WORKER_START_S:.0f} s: the Ray cluster has no free CPU "
                "(see `ray status`)"
            )
        self.asker = None
        if need_asker:
            # num_cpus=0: it waits on the endpoint; its threads are the LMM concurrency limit.
            # Placed beside the driver where it can be, so its response cache is this machine's.
            strategy = "DEFAULT"
            try:
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

                strategy = NodeAffinitySchedulingStrategy(node_id=self.ray.get_runtime_context().get_node_id(), soft=True)
            except Exception:  # Ray Client or no node id here: anywhere will do
                pass
            asker_class = self.ray.remote(num_cpus=0, max_concurrency=self.settings.lmm.concurrency)(ContactsAsker)
            self.asker = asker_class.options(scheduling_strategy=strategy).remote()

    def stop_workers(self) -> None:
        for slot in self.slots:
            try:
                self.ray.kill(slot.actor)
            except Exception:  # already gone: nothing to stop
                pass

    # -------------------------------------------------------------------------------- items

    def _request(self, item_id: str) -> RefineRequest:
        item = self.items[item_id]
        truth_bytes, truth_label = None, None
        if item.ground_truth_file is not None:
            truth_label = str(item.ground_truth_file)
            truth_bytes = item.ground_truth_file.read_bytes()
        elif item.ground_truth_inline is not None:
            truth_label = f"of manifest line {item.line}"
            truth_bytes = json.dumps(item.ground_truth_inline).encode()
        return RefineRequest(
            item_id=item.id,
            job_label=str(item.job),
            job_bytes=item.job.read_bytes(),
            lmm_samples=self.samples.get(item.id),
            truth_label=truth_label,
            truth_bytes=truth_bytes,
        )

    def _contacts_request(self, item_id: str) -> ContactsRequest:
        item = self.items[item_id]
        lmm = self.settings.lmm
        job = parse_job(item.job.read_bytes(), str(item.job))
        assert item.image is not None
        return ContactsRequest(
            item_id=item.id, image_name=item.image.name, image_bytes=item.image.read_bytes(), people=len(job.people),
            boxes=item.boxes, model=lmm.model, base_url=lmm.base_url, samples=lmm.samples,
            api_key_env=lmm.api_key_env, cache_dir=lmm.cache_dir, deadline_s=lmm.deadline_s,
        )

    def _fill(self) -> None:
        while self.ask_queue and len(self.asking) < 2 * self.settings.lmm.concurrency:
            item_id = self.ask_queue.popleft()
            try:
                request = self._contacts_request(item_id)
            except (EngineError, OSError) as error:
                self._finish_failed(item_id, f"contacts: {error}")
                continue
            self.asking[self.asker.ask.remote(request)] = item_id
        while self.refine_queue:
            slot = min((s for s in self.slots if not s.dead), key=lambda s: len(s.running), default=None)
            if slot is None or len(slot.running) >= PREFETCH:
                return
            item_id = self.refine_queue.popleft()
            try:
                request = self._request(item_id)
            except OSError as error:
                self._finish_failed(item_id, f"cannot read a file of the item: {error.strerror or error}")
                continue
            self.attempts[item_id] += 1
            ref = slot.actor.refine.remote(request)
            slot.running.append(ref)
            self.running[ref] = (slot, item_id)
            self.emit("item_start", {"id": item_id, "attempt": self.attempts[item_id], "worker": slot.name,
                                     "pid": slot.info.pid})

    def _record(self, item_id: str, status: ItemStatus, message: str = "", outcome: ItemOutcome | None = None,
                result_file: str = "") -> ItemRecord:
        item = self.items[item_id]
        worker = outcome.worker if outcome is not None else None
        return ItemRecord(
            id=item.id,
            line=item.line,
            job=str(item.job),
            key=item.key,
            status=status,
            message=message,
            attempts=self.attempts[item_id],
            refine_s=outcome.refine_s if outcome is not None else 0.0,
            body_load_s=outcome.body_load_s if outcome is not None else 0.0,
            worker=f"{worker.node}:{worker.pid}" if worker is not None else "",
            worker_rss_mb=worker.rss_mb if worker is not None else 0.0,
            result_file=result_file,
            contacts_file=self.contacts_files.get(item_id, ""),
            frames=outcome.frames if outcome is not None else [],
            evaluation_error=outcome.evaluation_error if outcome is not None else "",
        )

    def _store(self, record: ItemRecord) -> None:
        write_json(record_path(self.out_dir, record.id), record.to_dict())
        self.records[record.id] = record
        if record.status == "done":
            self.done += 1
        else:
            self.failed += 1
        finished = self.done + self.failed
        elapsed = time.perf_counter() - self.started
        rate = finished / elapsed if elapsed > 0 else 0.0
        remaining = len(self.items) - len(self.records)
        self.emit("item", {
            "id": record.id, "status": record.status, "message": record.message, "attempts": record.attempts,
            "refine_s": round(record.refine_s, 3), "done": self.done, "failed": self.failed,
            "finished": len(self.records), "total": len(self.items), "items_per_s": round(rate, 3),
            "eta_s": round(remaining / rate, 1) if rate > 0 else None,
        })

    def _finish_failed(self, item_id: str, message: str, outcome: ItemOutcome | None = None) -> None:
        # A result of an earlier version of this item would read as this one's.
        (self.out_dir / "results" / f"{item_id}.result.json").unlink(missing_ok=True)
        self._store(self._record(item_id, "failed", message, outcome))

    def _finish(self, outcome: ItemOutcome) -> None:
        worker = outcome.worker
        if worker is not None:
            name = f"{worker.node}:{worker.pid}"
            self.use.setdefault(name, WorkerUse(name, rss_first_mb=worker.rss_mb)).add(worker.rss_mb)
        if outcome.status != "done" or outcome.result is None:
            self._finish_failed(outcome.item_id, outcome.message, outcome)
            return
        relative = f"results/{outcome.item_id}.result.json"
        write_json(self.out_dir / relative, outcome.result)
        self._store(self._record(outcome.item_id, "done", outcome=outcome, result_file=relative))

    def _answered(self, item_id: str, answer: ContactsAnswer) -> None:
        if not answer.ok:
            self._finish_failed(item_id, answer.message)
            return
        relative = f"contacts/{item_id}.contacts.json"
        path = self.out_dir / relative
        from engine.files import atomic_file

        with atomic_file(path, "w", encoding="utf-8") as stream:
            stream.write(answer.contacts_text)
        self.contacts_files[item_id] = relative
        self.samples[item_id] = answer.samples
        self.refine_queue.append(item_id)

    def _worker_died(self, slot: _Slot, item_id: str, error: Exception) -> None:
        if not slot.dead:
            slot.dead = True
            self.restarted += 1
            replacement = self._new_slots(1)
            if replacement:
                self.slots[self.slots.index(slot)] = replacement[0]
            elif not any(not s.dead for s in self.slots):
                raise EngineError(
                    f"every refine worker died and none could be started again within {WORKER_START_S:.0f} s "
                    f"(last: {slot.name}: {error}); the report lists what was done"
                )
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if self.attempts[item_id] >= self.settings.max_attempts:
            self._finish_failed(item_id, f"its worker died on each of {self.attempts[item_id]} tries (last: {reason})")
            return
        self.emit("retry", {"id": item_id, "attempt": self.attempts[item_id], "worker": slot.name,
                            "message": f"worker {slot.name} died; retried on another worker"})
        self.refine_queue.appendleft(item_id)

    # -------------------------------------------------------------------------------- loop

    def run(self, todo: list[ManifestItem]) -> bool:
        """Runs ``todo``; False when stopped before the end."""
        for item in todo:
            (self.ask_queue if item.image is not None else self.refine_queue).append(item.id)
        ray = self.ray
        while self.refine_queue or self.ask_queue or self.running or self.asking:
            if self.should_stop():
                return False
            self._fill()
            waiting = list(self.running) + list(self.asking)
            if not waiting:
                continue
            ready, _ = ray.wait(waiting, num_returns=1, timeout=WAIT_S)
            for ref in ready:
                if ref in self.asking:
                    item_id = self.asking.pop(ref)
                    try:
                        self._answered(item_id, ray.get(ref))
                    except ray.exceptions.RayError as error:
                        self._finish_failed(item_id, f"contacts: {type(error).__name__}: {error}")
                    continue
                slot, item_id = self.running.pop(ref)
                slot.running.remove(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayActorError as error:
                    self._worker_died(slot, item_id, error)
                    continue
                except ray.exceptions.RayError as error:
                    self._finish_failed(item_id, f"{type(error).__name__}: {error}")
                    continue
                self._finish(outcome)
        return True


def run_batch(settings: BatchSettings, emit: EventSink, should_stop: Callable[[], bool]) -> BatchOutcome:
    """Run the manifest; always ends by writing the report (also when stopped)."""
    ray = _import_ray(embedded=settings.address is None)
    items = read_manifest(settings.manifest)
    _check_out_dir(settings.out_dir)
    started_at = _now()
    resumed = {}
    for item in items:
        record = finished_record(settings.out_dir, item)
        if record is not None:
            resumed[item.id] = record
    todo = [item for item in items if item.id not in resumed]
    emit("batch", {"items": len(items), "to_run": len(todo), "resumed": len(resumed), "out_dir": str(settings.out_dir)})
    address, workers = "-", 0
    driver: _Driver | None = None
    interrupted = False
    failure: EngineError | None = None
    wall_start = wall_end = time.perf_counter()
    if todo:
        address, workers = _connect(ray, settings)
        try:
            driver = _Driver(ray, settings, items, emit, should_stop)
            driver.records.update(resumed)
            driver.start(workers, need_asker=any(item.image is not None for item in todo))
            emit("workers", {"address": address, "workers": [s.name for s in driver.slots]})
            wall_start = driver.started = time.perf_counter()
            try:
                interrupted = not driver.run(todo)
            except EngineError as error:  # no worker left: what was done is still reported
                failure, interrupted = error, True
            wall_end = time.perf_counter()
            if interrupted:
                driver.stop_workers()
        finally:
            ray.shutdown()
    records_by_id = driver.records if driver is not None else resumed
    records = []
    for item in items:
        record = records_by_id.get(item.id)
        if record is None:
            record = ItemRecord(id=item.id, line=item.line, job=str(item.job), key=item.key, status="not run")
        records.append(record)
    figures = RunFigures(
        started=started_at,
        wall_s=wall_end - wall_start,
        items_run=(driver.done + driver.failed) if driver is not None else 0,
        workers=workers,
        address=address,
        interrupted=interrupted,
        worker_use=list(driver.use.values()) if driver is not None else [],
        restarted_workers=driver.restarted if driver is not None else 0,
    )
    report = build_report(settings.manifest, settings.out_dir, records, figures)
    write_report(settings.out_dir, report)
    if failure is not None:
        raise failure
    return BatchOutcome(report=report, interrupted=interrupted)
