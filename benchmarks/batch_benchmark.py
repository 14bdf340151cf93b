"""Batch benchmark (issue 21): 200 generated two-person frames through ``python -m engine batch``
on an embedded Ray with 2 workers, against the ways to do the same without it.

    flock /tmp/bench.lock .venv/bin/python benchmarks/batch_benchmark.py
    flock /tmp/bench.lock .venv/bin/python benchmarks/batch_benchmark.py --items 40 --cli-items 6   # quicker

The frames are the two-person scenes of the generator's tuning seeds (``engine.synth``; the
defaults may be chosen on these, and throughput is not accuracy), each written as the job a
user would write (``scene_job``: initial poses and the parsed answers, default options).
There are fewer distinct two-person scenes than 200, so the manifest cycles through their
jobs: every item is refined in full, some items share a job file's content. Scenes come from
the cache (``~/.cache/prosepose/synth``) and are built the first time (a few seconds each).

Measured, one after another (time every benchmark under ``flock /tmp/bench.lock`` so two
never overlap on a 2-core machine):

1. Ray: ``python -m engine batch MANIFEST -o OUT --workers 2``, end to end (the command's
   whole wall time: Ray start, worker start, body loads) and steady (the report's run time,
   from the workers being up to the last item).
2. In-process loop per core: two processes, each loading the body once and refining its
   half of the items with ``run_job`` in a loop (what Ray's workers do, without Ray): the
   ideal that Ray's overhead is measured against. End to end and steady (the loops alone).
3. The one-process-per-item CLI loop: ``python -m engine refine job -o result`` per item,
   one after another, and two at a time (both cores); timed on the first ``--cli-items``
   items and extrapolated to all of them (per-item time x items), which the output says.

Printed: items/s of each, Ray's ratio to the CLI loops (target >= 1.6x) and to the in-process
loop (target within 15%, end to end), Ray's per-item overhead in ms (worker time per item on a
Ray worker minus that in a plain loop, body loads left out of both), each Ray worker's
resident memory after 1, 2, 5, 10, 20, 50, ... items and its last (target: flat, no growth
over the second half of its items), and (``--eval-items``, off with 0) the ground-truth
metrics of a short batch of distinct scenes with their ground truth.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def write_inputs(folder: Path, items: int, eval_items: int) -> tuple[Path, Path | None, int]:
    """Job files of the two-person tuning scenes, a manifest of ``items`` items cycling over
    them, and a manifest of ``eval_items`` distinct scenes with their ground truth."""
    import torch

    from engine.lmm.parser import parse_response
    from engine.synth import TUNING_SEEDS, SynthContext, contact_type_of, generate_scene
    from engine.synth.poses import posed_vertices
    from engine.synth.scene import scene_job

    torch.set_num_threads(1)
    context = SynthContext.shared()
    seeds = [s for s in TUNING_SEEDS if contact_type_of(s).num_people == 2]
    built = 0
    jobs = []
    for seed in seeds:
        scene = generate_scene(seed, context=context)
        built += scene.info.get("source") == "built"
        samples = [parse_response(text, scene.num_people) for text in scene.answers]
        job = scene_job(scene, context.body.joint_names, samples)
        job_path = folder / f"scene-{seed}.json"
        job_path.write_text(json.dumps(job.to_dict()), encoding="utf-8")
        _, joints = posed_vertices(context.body, scene.ground_truth)
        truth = {"frames": [{
            "frame": job.frames[0].frame,
            "joints": joints.double().numpy().round(6).tolist(),
            "contacts": [{"person_a": a, "region_a": ra, "person_b": b, "region_b": rb} for a, ra, b, rb in scene.contacts],
        }]}
        (folder / f"scene-{seed}.truth.json").write_text(json.dumps(truth), encoding="utf-8")
        jobs.append(job_path.name)
    print(f"scenes: {len(seeds)} two-person tuning scenes ({built} built now, the rest from the cache); "
          f"{items} items cycle through their jobs", flush=True)
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"f{i:04d}", "job": jobs[i % len(jobs)]}) + "\n" for i in range(items)))
    evaluation = None
    if eval_items:
        evaluation = folder / "eval.jsonl"
        evaluation.write_text("".join(
            json.dumps({"id": Path(name).stem, "job": name, "ground_truth": name.replace(".json", ".truth.json")}) + "\n"
            for name in jobs[:eval_items]
        ))
    return manifest, evaluation, len(seeds)


def run_ray(manifest: Path, out_dir: Path, workers: int) -> tuple[float, dict]:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "engine", "batch", str(manifest), "-o", str(out_dir), "--workers", str(workers)],
        cwd=REPO, capture_output=True, text=True,
    )
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        sys.exit(f"the batch failed ({completed.returncode}):\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    return wall, json.loads((out_dir / "report.json").read_text())


def in_process_worker(manifest: Path, part: int, parts: int) -> None:
    """One core's loop (``--in-process-part``): load the body once, refine every ``parts``-th
    item from ``part`` with run_job, print one JSON line of timings."""
    started = time.perf_counter()
    import torch

    from engine.body import load_body
    from engine.body.region_map import body_regions
    from engine.refine.job import Job
    from engine.refine.run import run_job

    torch.set_num_threads(1)  # as the CLI and the batch workers
    body = load_body("anny")
    regions = body_regions(body)
    loaded = time.perf_counter()
    folder = manifest.parent
    lines = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    times = []
    for line in lines[part::parts]:
        item_started = time.perf_counter()
        job = Job.from_dict(json.loads((folder / line["job"]).read_text()))
        run_job(job, body, regions)
        times.append(time.perf_counter() - item_started)
    print(json.dumps({"items": len(times), "load_s": loaded - started, "loop_s": time.perf_counter() - loaded,
                      "item_s": times}), flush=True)


def run_in_process(manifest: Path, parts: int) -> tuple[float, list[dict]]:
    started = time.perf_counter()
    processes = [
        subprocess.Popen([sys.executable, __file__, "--in-process-part", str(part), "--parts", str(parts), "--manifest", str(manifest)],
                         cwd=REPO, stdout=subprocess.PIPE, text=True)
        for part in range(parts)
    ]
    outputs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in processes]
    return time.perf_counter() - started, outputs


def run_cli_loop(manifest: Path, items: int, parallel: int, out_dir: Path) -> float:
    lines = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()][:items]
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(line: dict) -> None:
        completed = subprocess.run(
            [sys.executable, "-m", "engine", "refine", str(manifest.parent / line["job"]), "-o", str(out_dir / f"{line['id']}.json")],
            cwd=REPO, capture_output=True, text=True,
        )
        if completed.returncode != 0:
            sys.exit(f"engine refine failed: {completed.stdout[-2000:]}")

    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, lines))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200, help="items in the timed batch (default 200)")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers and in-process loops (default 2, the cores here)")
    parser.add_argument("--cli-items", type=int, default=20, help="items the CLI loops are timed on (default 20)")
    parser.add_argument("--eval-items", type=int, default=12, help="distinct scenes of the ground-truth batch (0: none)")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    parser.add_argument("--in-process-part", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--parts", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--manifest", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_process_part is not None:
        in_process_worker(args.manifest, args.in_process_part, args.parts)
        return 0

    with tempfile.TemporaryDirectory(prefix="batch-bench-") as temporary:
        folder = args.keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            print(f"machine: {os.cpu_count()} cores, load average {' '.join(open('/proc/loadavg').read().split()[:3])}")
        except OSError:
            pass
        manifest, evaluation, scenes = write_inputs(folder, args.items, args.eval_items)
        n, w = args.items, args.workers

        print(f"\n1. Ray, embedded, {w} workers, {n} items ...", flush=True)
        ray_wall, report = run_ray(manifest, folder / "ray-out", w)
        run = report["run"]
        assert report["done"] == n, f"{report['failed']} items failed"
        ray_steady = run["wall_s"]
        refine_times = [r["refine_s"] for r in report["records"]]
        print(f"   end to end {ray_wall:.1f} s ({n / ray_wall:.3f} items/s); steady {ray_steady:.1f} s "
              f"({n / ray_steady:.3f} items/s); median time in the worker per item {statistics.median(refine_times):.3f} s")

        print(f"\n2. in-process loop per core: {w} processes, each loading the body once ...", flush=True)
        ip_wall, parts = run_in_process(manifest, w)
        ip_steady = max(p["loop_s"] for p in parts)
        ip_items = [t for p in parts for t in p["item_s"]]
        print(f"   end to end {ip_wall:.1f} s ({n / ip_wall:.3f} items/s); loops alone {ip_steady:.1f} s "
              f"({n / ip_steady:.3f} items/s); median per item {statistics.median(ip_items):.3f} s; body load "
              f"{statistics.mean(p['load_s'] for p in parts):.1f} s per process")

        cli_n = min(args.cli_items, n)
        print(f"\n3. CLI loop (python -m engine refine per item) on the first {cli_n} items, extrapolated to {n} ...", flush=True)
        cli_one = run_cli_loop(manifest, cli_n, 1, folder / "cli-1")
        cli_two = run_cli_loop(manifest, cli_n, w, folder / "cli-2")
        cli_one_rate, cli_two_rate = cli_n / cli_one, cli_n / cli_two
        print(f"   one at a time: {cli_one:.1f} s for {cli_n} = {cli_one / cli_n:.2f} s per item -> {n / cli_one_rate:.0f} s "
              f"for {n} ({cli_one_rate:.3f} items/s)")
        print(f"   {w} at a time:  {cli_two:.1f} s for {cli_n} = {cli_two / cli_n:.2f} s per item -> {n / cli_two_rate:.0f} s "
              f"for {n} ({cli_two_rate:.3f} items/s)")

        ray_rate, ip_rate = n / ray_wall, n / ip_wall
        # Worker time per item, body loads left out on both sides (Ray's workers load theirs
        # with their first item, the loops before theirs).
        ray_worker_s = w * ray_steady - run["body_load_s"]
        ip_worker_s = sum(p["loop_s"] for p in parts)
        overhead_ms = 1000 * (ray_worker_s - ip_worker_s) / n
        print(f"\nsummary ({n} two-person frames, {scenes} distinct scenes cycled; CLI figures extrapolated from {cli_n} items):")
        print(f"  throughput, end to end: Ray {ray_rate:.3f} items/s, in-process loop per core {ip_rate:.3f}, "
              f"CLI loop {cli_one_rate:.3f} (one at a time) / {cli_two_rate:.3f} ({w} at a time)")
        print(f"  Ray's overhead per item: {overhead_ms:.0f} ms of worker time ({ray_worker_s / n:.3f} s per item on a Ray "
              f"worker against {ip_worker_s / n:.3f} s in a plain loop, body loads left out); fixed cost "
              f"{ray_wall - ray_steady:.1f} s (Ray and workers starting, shutdown) against {ip_wall - ip_steady:.1f} s "
              f"(processes and bodies)")
        checks = [
            (f"Ray >= 1.6x the CLI loop: {ray_rate / cli_one_rate:.2f}x one at a time, {ray_rate / cli_two_rate:.2f}x {w} at a time",
             ray_rate >= 1.6 * cli_two_rate),
            (f"Ray within 15% of the in-process loop per core: {100 * ray_rate / ip_rate:.1f}% of its throughput end to end "
             f"({100 * ip_worker_s / ray_worker_s:.1f}% in worker time per item)", ray_rate >= 0.85 * ip_rate),
        ]
        print("  worker memory (resident MB after so many items):")
        flat = []
        for use in run["worker_memory"]:
            trace = use["rss_trace"] + ([[use["items"], use["rss_last_mb"]]] if use["rss_trace"][-1][0] != use["items"] else [])
            middle = max((point for point in trace if point[0] <= use["items"] / 2), key=lambda point: point[0])
            flat.append((use["rss_last_mb"] - middle[1], middle, use))
            print(f"    {use['name']}: " + ", ".join(f"{int(k)}: {mb:.0f}" for k, mb in trace)
                  + f" (first -> last {use['rss_last_mb'] - use['rss_first_mb']:+.0f} MB)")
        worst = max(flat, key=lambda entry: entry[0])
        checks.append((f"memory per worker flat: largest growth over the second half of a worker's items "
                       f"{worst[0]:+.0f} MB ({int(worst[1][0])} -> {worst[2]['items']} items; at most 2% allowed)",
                       all(growth <= 0.02 * middle[1] for growth, middle, _ in flat)))
        print("\ntargets of issue 21:")
        for text, ok in checks:
            print(f"  [{'PASS' if ok else 'FAIL'}] {text}")

        if evaluation is not None:
            print(f"\n4. ground-truth batch: {args.eval_items} distinct scenes with their ground truth (joints, contact pairs) ...", flush=True)
            _, eval_report = run_ray(evaluation, folder / "eval-out", w)
            metrics = eval_report["metrics"]
            print(f"   {metrics['frames_evaluated']} frames, {metrics.get('contact_pairs', 0)} contact pairs:")
            for name, label in (("mpjpe", "MPJPE"), ("pa_mpjpe", "PA-MPJPE"), ("joint_pa_mpjpe", "joint PA-MPJPE")):
                print(f"   {label:<15} {metrics[f'{name}_before_mm']:7.1f} -> {metrics[f'{name}_after_mm']:7.1f} mm")
            print(f"   {'PCC':<15} {metrics['pcc_before']:7.1f} -> {metrics['pcc_after']:7.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
