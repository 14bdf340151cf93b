"""Item records and the run's report (``OUT_DIR/report.json`` and ``OUT_DIR/report.md``).

Each finished item has a record ``OUT_DIR/items/<id>.json`` (written atomically after its
result file), holding the item's content key: a rerun skips an item whose record says done
with the same key and whose result file is there. The report is made from every record of
the manifest's items at the end of a run (also of an interrupted one)."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from engine.files import atomic_file

RECORD_SCHEMA_VERSION = 1
REPORT_SCHEMA_VERSION = 1

ItemStatus = Literal["done", "failed", "not run"]


@dataclass
class ItemRecord:
    id: str
    line: int
    job: str
    key: str
    status: ItemStatus
    message: str = ""
    attempts: int = 0
    refine_s: float = 0.0  # the worker's time on the item (job parse, refinement, evaluation)
    body_load_s: float = 0.0  # the body load this item waited for (the first item of a worker)
    worker: str = ""  # node:pid of the worker that finished it
    worker_rss_mb: float = 0.0  # that worker's resident memory after the item
    result_file: str = ""  # relative to OUT_DIR
    contacts_file: str = ""
    frames: list[dict] = field(default_factory=list)
    evaluation_error: str = ""
    resumed: bool = False  # finished by an earlier run of the same command

    def to_dict(self) -> dict:
        return {"schema_version": RECORD_SCHEMA_VERSION, **{k: v for k, v in asdict(self).items() if k != "resumed"}}

    @classmethod
    def from_dict(cls, data: Any) -> "ItemRecord | None":
        """A stored record, or None when it is not one this engine wrote (then the item runs)."""
        if not isinstance(data, dict) or data.get("schema_version") != RECORD_SCHEMA_VERSION:
            return None
        fields = {k: v for k, v in data.items() if k != "schema_version"}
        try:
            return cls(**fields)
        except TypeError:
            return None


def record_path(out_dir: Path, item_id: str) -> Path:
    return out_dir / "items" / f"{item_id}.json"


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "w", encoding="utf-8") as stream:
        json.dump(data, stream, indent=1, allow_nan=False)


def read_record(out_dir: Path, item_id: str) -> ItemRecord | None:
    try:
        return ItemRecord.from_dict(json.loads(record_path(out_dir, item_id).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------------------ figures


_POSE_METRICS = ("mpjpe", "pa_mpjpe", "joint_pa_mpjpe", "vertex_error")


def run_metrics(records: list[ItemRecord]) -> dict:
    """Over every evaluated frame of the done items: the mean of each pose metric before and
    after, and PCC over every ground-truth contact pair (DESIGN.md: radii 0 .. 0.95 m)."""
    evaluations = [f["evaluation"] for r in records if r.status == "done" for f in r.frames if "evaluation" in f]
    metrics: dict[str, Any] = {"frames_evaluated": len(evaluations)}
    for name in _POSE_METRICS:
        for when in ("before", "after"):
            values = [e[f"{name}_{when}_m"] for e in evaluations if f"{name}_{when}_m" in e]
            if values:
                metrics[f"{name}_{when}_mm"] = round(1000 * statistics.fmean(values), 2)
    before = [d for e in evaluations for d in e.get("contact_before_m", [])]
    after = [d for e in evaluations for d in e.get("contact_after_m", [])]
    if after:
        from engine.refine.metrics import PCC_RADII_M, pcc  # torch: only when there is something to score

        metrics["contact_pairs"] = len(after)
        metrics["pcc_before"] = round(pcc(before), 2)
        metrics["pcc_after"] = round(pcc(after), 2)
        metrics["pcc_radii_m"] = list(PCC_RADII_M)
    return metrics


# Items after which a worker's memory is kept in its trace (and after its last one).
RSS_TRACE_AT = (1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 125, 150, 175, 200, 300, 500, 1000, 2000, 5000, 10000)


@dataclass
class WorkerUse:
    name: str
    items: int = 0
    rss_first_mb: float = 0.0  # after its first item (the body is loaded by then)
    rss_last_mb: float = 0.0
    rss_trace: list[list[float]] = field(default_factory=list)  # [items done, MB] at RSS_TRACE_AT

    def add(self, rss_mb: float) -> None:
        self.items += 1
        self.rss_last_mb = rss_mb
        if self.items in RSS_TRACE_AT:
            self.rss_trace.append([self.items, rss_mb])


@dataclass
class RunFigures:
    """What the driver measured of this run (resumed items are not in it)."""

    started: str
    wall_s: float
    items_run: int
    workers: int
    address: str
    interrupted: bool
    worker_use: list[WorkerUse]
    restarted_workers: int = 0


def build_report(manifest: Path, out_dir: Path, records: list[ItemRecord], figures: RunFigures) -> dict:
    counts = {status: sum(r.status == status for r in records) for status in ("done", "failed", "not run")}
    done_now = [r for r in records if r.status == "done" and not r.resumed]
    refine_times = [r.refine_s for r in done_now]
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "manifest": str(manifest),
        "out_dir": str(out_dir),
        "started": figures.started,
        "interrupted": figures.interrupted,
        "items": len(records),
        "done": counts["done"],
        "failed": counts["failed"],
        "not_run": counts["not run"],
        "resumed": sum(r.resumed for r in records),
        "run": {
            "address": figures.address,
            "workers": figures.workers,
            "restarted_workers": figures.restarted_workers,
            "wall_s": round(figures.wall_s, 3),
            "items_run": figures.items_run,
            "items_per_s": round(figures.items_run / figures.wall_s, 4) if figures.wall_s > 0 else None,
            "median_refine_s": round(statistics.median(refine_times), 4) if refine_times else None,
            "body_load_s": round(sum(r.body_load_s for r in done_now), 3),
            "worker_memory": [asdict(use) for use in figures.worker_use],
        },
        "metrics": run_metrics(records),
        "records": [{**r.to_dict(), "resumed": r.resumed} for r in records],
    }


def _mm(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{1000 * value:.1f}"


def _cell(text: str) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 200 else text[:197] + "..."


def report_markdown(report: dict) -> str:
    run = report["run"]
    lines = [
        "# Batch report",
        "",
        f"Manifest `{report['manifest']}`, started {report['started']}"
        + (" (interrupted: rerun the same command to finish)" if report["interrupted"] else "") + ".",
        "",
        f"- items: {report['items']}: {report['done']} done ({report['resumed']} from an earlier run), "
        f"{report['failed']} failed, {report['not_run']} not run",
        f"- this run: {run['items_run']} items in {run['wall_s']:.1f} s on {run['workers']} workers "
        f"({run['address']}), {run['items_per_s'] or 0:.2f} items/s; median refine time "
        f"{run['median_refine_s'] if run['median_refine_s'] is not None else '-'} s; workers restarted: {run['restarted_workers']}",
    ]
    metrics = report["metrics"]
    if metrics.get("frames_evaluated"):
        lines += ["", f"## Against the ground truth ({metrics['frames_evaluated']} frames)", "",
                  "| metric | before | after |", "|---|---|---|"]
        for name, label in (("mpjpe", "MPJPE (mm)"), ("pa_mpjpe", "PA-MPJPE (mm)"),
                            ("joint_pa_mpjpe", "joint PA-MPJPE (mm)"), ("vertex_error", "vertex error (mm)")):
            if f"{name}_after_mm" in metrics:
                lines.append(f"| {label} | {metrics[f'{name}_before_mm']:.1f} | {metrics[f'{name}_after_mm']:.1f} |")
        if "pcc_after" in metrics:
            lines.append(f"| PCC ({metrics['contact_pairs']} contact pairs, %) | {metrics['pcc_before']:.1f} | {metrics['pcc_after']:.1f} |")
    if run["worker_memory"]:
        lines += ["", "## Workers", "", "| worker | items | RSS after first item (MB) | RSS after last item (MB) |", "|---|---|---|---|"]
        for use in run["worker_memory"]:
            lines.append(f"| {use['name']} | {use['items']} | {use['rss_first_mb']:.0f} | {use['rss_last_mb']:.0f} |")
    lines += ["", "## Items", "",
              "| id | status | tries | time (s) | contact distance before -> after (mm, median of the terms) | MPJPE before -> after (mm) | message |",
              "|---|---|---|---|---|---|---|"]
    for record in report["records"]:
        before = [c["before_m"] for f in record["frames"] for c in f.get("constraints", [])]
        after = [c["after_m"] for f in record["frames"] for c in f.get("constraints", [])]
        contact = f"{_mm(statistics.median(before))} -> {_mm(statistics.median(after))}" if after else ""
        evaluated = [f["evaluation"] for f in record["frames"] if "mpjpe_after_m" in f.get("evaluation", {})]
        pose = ""
        if evaluated:
            pose = (f"{_mm(statistics.fmean(e['mpjpe_before_m'] for e in evaluated))} -> "
                    f"{_mm(statistics.fmean(e['mpjpe_after_m'] for e in evaluated))}")
        status = record["status"] + (" (earlier run)" if record["resumed"] else "")
        message = record["message"] or record["evaluation_error"]
        lines.append(
            f"| {_cell(record['id'])} | {status} | {record['attempts']} | {record['refine_s']:.2f} | {contact} | {pose} | {_cell(message)} |"
        )
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, report: dict) -> None:
    write_json(out_dir / "report.json", report)
    with atomic_file(out_dir / "report.md", "w", encoding="utf-8") as stream:
        stream.write(report_markdown(report))
