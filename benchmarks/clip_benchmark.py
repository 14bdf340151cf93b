"""Clip benchmark (issue 20): sequence refinement of generated two-person clips with one
contact interval, against the targets of the issue.

A clip is made from a two-person scene of engine.synth (``--set tuning``, the default: the
seeds defaults may be chosen on; ``--set report``: seeds only ever reported): the people move
from a relaxed pose (every joint half-way back to its rest rotation) into the scene's initial
pose, hold it, and move back out, with a little per-joint motion noise (a smoothed random
walk, about 0.3 degrees). The scene's ground-truth contacts become the artist's contacts,
held over the middle fifth of the clip, easing in and out over a quarter of it each. Printed:

- time of the 100-frame clip, per frame, against refining the interval's frames one by one
  (engine's single-frame path, warm-started);
- the largest contact distance over the frames inside the interval (full region vertex sets);
- the largest joint rotation change outside the interval;
- the largest frame-to-frame joint acceleration (second difference of joint positions) of the
  result against the original clip's;
- planted-foot sliding (horizontal speed of foot vertices low and slow in the original) of
  the result against the original;
- peak memory; time and memory at 25, 50, 100 and 200 frames (each size in a fresh process).

    .venv/bin/python benchmarks/clip_benchmark.py [--set tuning|report] [--scenes 3] [--frames 100] [--sizes 25,50,100,200]
Run it under ``flock /tmp/bench.lock`` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.refine.job import BodySpec, ConstraintSpec, ContactInterval, ExplicitContact, FramePoses, Job, JobOptions  # noqa: E402
from engine.refine.job import PersonPose, PersonSettings  # noqa: E402
from engine.refine.losses.geometry import matrix_to_quaternion, quaternion_to_matrix, rotate_by_axis_angle, rotation_angle  # noqa: E402
from engine.refine.run import people_state, run_job  # noqa: E402
from engine.synth import REPORT_SEEDS, TUNING_SEEDS, SynthContext, generate_scene  # noqa: E402
from engine.synth.poses import FLOOR, contact_distances  # noqa: E402

NOISE_DEG = 0.3


def _nlerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    b = torch.where((a * b).sum(-1, keepdim=True) < 0, -b, b)
    q = (1 - t) * a + t * b
    return q / q.norm(dim=-1, keepdim=True)


def _smooth(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


SEED_SETS = {"tuning": TUNING_SEEDS, "report": REPORT_SEEDS}


def two_person_scene(context: SynthContext, which: int = 0, seeds=TUNING_SEEDS):
    """The ``which``-th two-person scene of ``seeds`` whose contacts are all between the people."""
    found = 0
    for seed in seeds:
        scene = generate_scene(seed, context=context)
        if scene.num_people == 2 and all(rb != "ground" for _, _, _, rb in scene.contacts):
            if found == which:
                return scene
            found += 1
    raise RuntimeError(f"fewer than {which + 1} two-person scenes in the seed set")


def make_clip(scene, joint_names, count: int, seed: int = 0) -> tuple[Job, ContactInterval]:
    rng = np.random.default_rng(seed)
    target = matrix_to_quaternion(scene.initial.local_rotations)  # (N, J, 4)
    rest = torch.zeros_like(target)
    rest[..., 0] = 1.0
    relaxed = _nlerp(target, rest, 0.5)
    relaxed[:, 0] = target[:, 0]  # the root keeps its orientation
    # A smoothed random walk of small axis-angle offsets: mocap-like jitter.
    walk = np.cumsum(rng.normal(0, 1, size=(count, *target.shape[:2], 3)), axis=0)
    walk -= walk.mean(axis=0)
    walk *= math.radians(NOISE_DEG) / max(1e-9, np.abs(walk).max())
    # Into the pose over the first fifth, out of it over the last; the contact holds over the
    # middle fifth and eases over a quarter of the clip on either side. Why so long an ease:
    # the hand travels 30-40 cm to its contact, and the smallest largest acceleration of such
    # a move over E frames is about 4 x 0.37 m / E^2, the original clip's (3.6 mm/frame^2)
    # only from E = 25.
    ramp = max(2, count // 5)
    ease = max(1, count // 4)
    start, end = count // 2 - count // 10, count // 2 + count // 10
    frames = []
    for f in range(count):
        t = _smooth(f / ramp) if f < ramp else (_smooth((count - 1 - f) / ramp) if f > count - 1 - ramp else 1.0)
        q = _nlerp(relaxed, target, t)
        rotations = rotate_by_axis_angle(quaternion_to_matrix(q), torch.as_tensor(walk[f], dtype=torch.float32))
        q = matrix_to_quaternion(rotations)
        people = tuple(
            PersonPose(
                shape=tuple(float(v) for v in scene.initial.shape[p]),
                rotations={name: tuple(float(v) for v in q[p, j]) for j, name in enumerate(joint_names)},
                root_translation=tuple(float(v) for v in scene.initial.root_translation[p]),
            )
            for p in range(scene.num_people)
        )
        frames.append(FramePoses(frame=f + 1, people=people))
    interval = ContactInterval(start=start + 1, end=end + 1, ease_in=ease, ease_out=ease)
    contacts = tuple(ExplicitContact(a, ra, b, rb, interval=interval) for a, ra, b, rb in scene.contacts)
    job = Job(
        body=BodySpec(kind="anny"),
        people=tuple(PersonSettings(name=f"Person {p + 1}") for p in range(scene.num_people)),
        frames=tuple(frames),
        constraints=ConstraintSpec(explicit=contacts),
        options=JobOptions(floor_height=FLOOR, solve="sequence"),
    )
    return Job.from_dict(json.loads(json.dumps(job.to_dict()))), interval


def _states(body, frames):
    states = [people_state(body, frame.people, "clip") for frame in frames]
    return (
        torch.stack([s.local_rotations for s in states]),
        torch.stack([s.root_translation for s in states]),
        torch.stack([s.shape for s in states]),
    )


def _pose_all(body, rotations, translations, shapes):
    f, n = rotations.shape[:2]
    with torch.no_grad():
        out = body.forward(rotations.flatten(0, 1), translations.flatten(0, 1), shapes.flatten(0, 1))
    return out.vertices.reshape(f, n, -1, 3), out.joints.reshape(f, n, -1, 3)


def _status_mb(field: str) -> float:
    """A /proc/self/status size in MB. The process's peak is its VmHWM, not ru_maxrss: a child
    started by fork and exec inherits the parent's ru_maxrss, so each size's child printed the
    parent's peak as its own."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def _rss_mb() -> float:
    return _status_mb("VmRSS:")


class RssPeak:
    """The largest resident size while a block runs, sampled every 5 ms (the process's
    peak also counts building the scenes and the body, before the solve)."""

    def __enter__(self):
        import threading

        self.start = self.peak = _rss_mb()
        self._stop = threading.Event()

        def sample():
            while not self._stop.wait(0.005):
                self.peak = max(self.peak, _rss_mb())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def measure(count: int, frame_by_frame: bool, which: int = 0, seed_set: str = "tuning") -> dict:
    context = SynthContext.shared()
    body, regions = context.body, context.regions
    scene = two_person_scene(context, which, SEED_SETS[seed_set])
    job, interval = make_clip(scene, body.joint_names, count)
    with RssPeak() as rss:
        started = time.perf_counter()
        result = run_job(job, body, regions)
        seconds = time.perf_counter() - started
    peak_mb = _status_mb("VmHWM:")
    out = {"set": seed_set, "frames": count, "seconds": seconds, "per_frame_s": seconds / count, "peak_mb": peak_mb,
           "solve_start_mb": rss.start, "solve_peak_mb": rss.peak,
           "iterations": list(result.frames[interval.start - 1].iterations), "seed": scene.seed, "contact_type": scene.contact_type,
           "interval": interval.to_dict()}
    if not frame_by_frame:
        return out
    r0, t0, s0 = _states(body, job.frames)
    r1, t1, s1 = _states(body, result.frames)
    v0, j0 = _pose_all(body, r0, t0, s0)
    v1, j1 = _pose_all(body, r1, t1, s1)
    numbers = [f.frame for f in job.frames]
    inside = [i for i, n in enumerate(numbers) if interval.start <= n <= interval.end]
    outside = [i for i, n in enumerate(numbers) if n <= interval.start - interval.ease_in or n >= interval.end + interval.ease_out]
    out["contact_inside_max_m"] = max(max(contact_distances(regions, scene.contacts, v1[i])) for i in inside)
    out["contact_inside_before_max_m"] = max(max(contact_distances(regions, scene.contacts, v0[i])) for i in inside)
    # atan2, not arccos: float32 arccos reads an identity rotation as 0.03 degrees.
    angle = torch.rad2deg(rotation_angle(r0.transpose(-1, -2) @ r1))
    out["outside_max_rotation_deg"] = float(angle[outside].max())
    out["outside_max_translation_m"] = float((t1[outside] - t0[outside]).norm(dim=-1).max())
    accel0 = (j0[2:] - 2 * j0[1:-1] + j0[:-2]).norm(dim=-1).amax()
    accel1 = (j1[2:] - 2 * j1[1:-1] + j1[:-2]).norm(dim=-1).amax()
    out["accel_original_m_per_frame2"] = float(accel0)
    out["accel_result_m_per_frame2"] = float(accel1)
    # Planted feet: foot vertices within 2 cm of the floor and moving under 5 mm a frame in the original.
    feet = np.unique(np.concatenate([regions.vertex_ids(f"{side}_foot") for side in ("left", "right")]))
    f0, f1 = v0[:, :, feet], v1[:, :, feet]
    speed0 = (f0[1:, ..., :2] - f0[:-1, ..., :2]).norm(dim=-1)
    speed1 = (f1[1:, ..., :2] - f1[:-1, ..., :2]).norm(dim=-1)
    planted = (f0[1:, ..., 2] <= FLOOR + 0.02) & (speed0 < 0.005)
    out["planted_vertices"] = int(planted.sum())
    out["foot_slide_original_mm"] = float(speed0[planted].mean() * 1000) if planted.any() else 0.0
    out["foot_slide_result_mm"] = float(speed1[planted].mean() * 1000) if planted.any() else 0.0
    out["foot_slide_result_max_mm"] = float(speed1[planted].max() * 1000) if planted.any() else 0.0
    # Frame by frame: the same interval frames through the single-frame path, warm-started.
    few = inside[:5]
    single = Job(
        body=job.body, people=job.people, frames=tuple(job.frames[i] for i in few),
        constraints=ConstraintSpec(explicit=tuple(ExplicitContact(c.person_a, c.region_a, c.person_b, c.region_b) for c in job.constraints.explicit)),
        options=JobOptions(floor_height=FLOOR, optimize_shape=False),
    )
    started = time.perf_counter()
    run_job(single, body, regions)
    out["frame_by_frame_per_frame_s"] = (time.perf_counter() - started) / len(few)
    return out


def report_clip(f: dict) -> None:
    print(f"scene: {f['set']} seed {f['seed']} ({f['contact_type']}), {f['frames']} frames, interval {f['interval']}")
    print(f"time: {f['seconds']:.1f} s for {f['frames']} frames (target <= 30 s), {f['per_frame_s'] * 1000:.0f} ms per frame; "
          f"frame by frame {f['frame_by_frame_per_frame_s'] * 1000:.0f} ms per frame; {f['iterations']} iterations")
    print(f"contact inside the interval: max {f['contact_inside_max_m'] * 100:.2f} cm over its frames (target <= 1 cm; "
          f"before {f['contact_inside_before_max_m'] * 100:.1f} cm)")
    print(f"outside every interval: max joint rotation change {f['outside_max_rotation_deg']:.6f} deg (target < 0.5), "
          f"root {f['outside_max_translation_m'] * 1000:.6f} mm")
    ratio = f["accel_result_m_per_frame2"] / max(1e-12, f["accel_original_m_per_frame2"])
    print(f"max joint acceleration: result {f['accel_result_m_per_frame2'] * 1000:.2f} mm/frame^2, original "
          f"{f['accel_original_m_per_frame2'] * 1000:.2f} ({ratio:.2f}x, target <= 1.2x)")
    print(f"planted feet ({f['planted_vertices']} vertex-frames): mean horizontal speed result {f['foot_slide_result_mm']:.3f} mm/frame, "
          f"original {f['foot_slide_original_mm']:.3f} (max result {f['foot_slide_result_max_mm']:.2f})")
    print(f"memory: resident {f['solve_start_mb']:.0f} MB before the solve (body, regions, scene), peak "
          f"{f['solve_peak_mb']:.0f} MB during it (+{f['solve_peak_mb'] - f['solve_start_mb']:.0f} MB; target < 4096 MB); "
          f"process peak {f['peak_mb']:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--sizes", default="25,50,100,200")
    parser.add_argument("--scenes", type=int, default=3, help="two-person scenes to make clips of")
    parser.add_argument("--set", choices=sorted(SEED_SETS), default="tuning",
                        help="seed set of the scenes: defaults may be chosen on 'tuning' only; 'report' is only reported")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child process: one size, JSON out
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, frame_by_frame=False, seed_set=args.set)))
        return
    clips = []
    for which in range(args.scenes):
        clips.append(measure(args.frames, frame_by_frame=True, which=which, seed_set=args.set))
        report_clip(clips[-1])
    ratios = [f["accel_result_m_per_frame2"] / max(1e-12, f["accel_original_m_per_frame2"]) for f in clips]
    print(f"summary ({args.set} set, {len(clips)} clips): time <= 30 s in {sum(f['seconds'] <= 30 for f in clips)}; "
          f"contact <= 1 cm in {sum(f['contact_inside_max_m'] <= 0.01 for f in clips)}; "
          f"outside rotation < 0.5 deg in {sum(f['outside_max_rotation_deg'] < 0.5 for f in clips)}; "
          f"acceleration <= 1.2x in {sum(r <= 1.2 for r in ratios)} (largest {max(ratios):.2f}x); "
          f"foot sliding not above the original's (+0.01 mm/frame) in {sum(f['foot_slide_result_mm'] <= f['foot_slide_original_mm'] + 0.01 for f in clips)}")
    for size in [int(s) for s in args.sizes.split(",") if s]:
        child = subprocess.run([sys.executable, __file__, "--one", str(size), "--set", args.set], capture_output=True, text=True, check=True)
        g = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"  {size:4d} frames: {g['seconds']:6.1f} s ({g['per_frame_s'] * 1000:.0f} ms/frame, {g['iterations']} iterations), "
              f"resident peak during the solve {g['solve_peak_mb']:.0f} MB (+{g['solve_peak_mb'] - g['solve_start_mb']:.0f} MB), "
              f"process peak {g['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
