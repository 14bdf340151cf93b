"""``make demo``: the whole method on the bundled examples, headless, through the add-on's own
operators, with pictures and a report.

    .venv/bin/python -m tools.demo.run                         # every example, replayed answers
    .venv/bin/python -m tools.demo.run --only hand-on-knee --out /tmp/demo
    LMM_BASE_URL=... LMM_MODEL=... OPENAI_API_KEY=... .venv/bin/python -m tools.demo.run   # live
    .venv/bin/python -m tools.demo.run --image photo.jpg --people 2                        # live, your image

For each example (``examples/<name>/``, see ``tools/demo/example.py``), in Blender (the ``bpy``
module: real, headless Blender) with the add-on enabled the way Blender enables an installed
extension:

1. Add body (``prosepose.add_body``) for each person, from the rig the engine writes for the
   person's shape (``python -m engine rig --shape``), and the example's initial pose keyed at
   frame 1 as the body's own action (the animation a user brings);
2. Find contacts (``prosepose.find_contacts``) on the reference image. Replay mode (the
   default): the engine reads the example's 20 answers from its ``answers.json``
   (``--replay``) instead of asking a model; parsing, aggregation and all after are the live
   path. Live mode (``LMM_BASE_URL`` and/or ``LMM_MODEL`` set, or ``--image``): the model at
   that endpoint is asked, with the key from ``OPENAI_API_KEY`` in the engine process's
   environment only;
3. Show regions (``prosepose.show_regions``), a render of the initial pose with the contact
   regions coloured;
4. Refine (``prosepose.refine``) through the engine subprocess: the result goes on its own NLA
   track above the original;
5. a render of the refined pose, a side-by-side picture with the reference image, the .blend.

Then ``report.md`` (and ``report.json``): per ground-truth contact the distance before and
after, measured on Blender's evaluated meshes, the deepest penetration, each body's lowest
point and the time of each step. In replay mode the run fails (exit 1) unless every contact
starts farther than 3 cm and ends within 1 cm with no penetration deeper than 1 cm.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.demo.example import Example, ExampleError, example_folders, load_example  # noqa: E402

ENGINE_PYTHON = ROOT / ".venv" / "bin" / "python"
FAR_BEFORE_M = 0.03
WITHIN_AFTER_M = 0.01
MAX_PENETRATION_M = 0.01
RESOLUTION = (640, 480)
API_KEY_ENV = "OPENAI_API_KEY"


def say(text: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass
class ContactRow:
    label: str
    before_m: float
    after_m: float


@dataclass
class Outcome:
    name: str
    title: str
    num_people: int
    mode: str  # "replay" or "live"
    image: str
    contacts: list[ContactRow] = field(default_factory=list)
    found: list[str] = field(default_factory=list)  # the contact list Find contacts filled
    addon_results: list[ContactRow] = field(default_factory=list)  # the add-on's own result rows
    penetration_before_m: float = 0.0
    penetration_after_m: float = 0.0
    lowest_before_m: list[float] = field(default_factory=list)
    lowest_after_m: list[float] = field(default_factory=list)
    meshes: list[str] = field(default_factory=list)
    frame: int = 1
    steps_s: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.contacts) and all(
            c.before_m > FAR_BEFORE_M and c.after_m <= WITHIN_AFTER_M for c in self.contacts
        ) and self.penetration_after_m <= MAX_PENETRATION_M


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


# ------------------------------------------------------------------------------- Blender set-up

def enable_addon(work: Path):
    """Import the repository as the add-on package ``prosepose`` (a link in ``work``, the way
    Blender imports an installed extension) and enable it through Blender's add-on system, so
    its preferences exist."""
    import addon_utils

    parent = work / "addon"
    parent.mkdir(parents=True, exist_ok=True)
    link = parent / "prosepose"
    if not link.exists():
        os.symlink(ROOT, link)
    if str(parent) not in sys.path:
        sys.path.insert(0, str(parent))
    addon_utils.enable("prosepose", default_set=True, handle_error=None)
    import bpy

    if "prosepose" not in bpy.context.preferences.addons:
        raise DemoError("the add-on could not be enabled (see the messages above)")


def configure(cache: Path, live: bool) -> None:
    """The add-on's preferences for this run: the engine interpreter, its cache folder (jobs,
    results, contacts files, the engine log, the response cache: inside the outputs, where the
    live run's key check looks too), and the answer source (an example's replay file is set per example; live: the endpoint from the
    environment). The key is never put in the preferences: the engine process inherits it."""
    import bpy

    prefs = bpy.context.preferences.addons["prosepose"].preferences
    prefs.engine_python = str(ENGINE_PYTHON)
    prefs.cache_folder = str(cache)
    prefs.lmm_api_key = ""
    prefs.lmm_api_key_env = API_KEY_ENV
    prefs.lmm_samples = 20
    prefs.lmm_replay_file = ""
    if live:
        prefs.lmm_base_url = os.environ.get("LMM_BASE_URL", "")
        prefs.lmm_model = os.environ.get("LMM_MODEL", "") or "gpt-4o"
        # The user asked for the endpoint by naming it: allow Blender to reach it.
        bpy.context.preferences.system.use_online_access = True


def engine_rig(shape: tuple[float, ...], rigs: Path) -> Path:
    """The rig description of an Anny body of ``shape``, written by the engine (cached by shape)."""
    rigs.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(json.dumps([round(v, 8) for v in shape]).encode()).hexdigest()[:16]
    path = rigs / f"anny-{key}.npz"
    if path.is_file():
        return path
    argv = [str(ENGINE_PYTHON), "-m", "engine", "rig", "--body", "anny", "--shape", *map(repr, shape), "--out", str(path)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise DemoError(f"python -m engine rig failed ({done.returncode}): {(done.stdout + done.stderr).strip()[-600:]}")
    return path


def _run_operator(name: str, call) -> float:
    """Run an add-on operator, fail with its name when it does not finish; returns seconds."""
    started = time.perf_counter()
    result = call()
    if result != {"FINISHED"}:
        raise DemoError(f"{name} did not finish ({result}); see the messages above")
    return time.perf_counter() - started


def load_scene(example: Example, rigs: Path, outcome: Outcome) -> list:
    """A new scene with the example's people (Add body) in their initial pose at frame 1."""
    import bpy

    from prosepose.prose_blender.bodies import body_info, body_mesh
    from prosepose.prose_blender.keyframes import assign_action, new_pose_action
    from prosepose.prose_blender.poses import EnginePose, bone_pose_from_engine

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.frame_start = scene.frame_end = outcome.frame
    scene.frame_set(outcome.frame)
    started = time.perf_counter()
    rig_files = [engine_rig(person.initial.shape, rigs) for person in example.people]
    outcome.steps_s["engine rig (body shapes)"] = time.perf_counter() - started
    armatures = []
    add_time = 0.0
    for index, (person, rig) in enumerate(zip(example.people, rig_files)):
        name = f"P{index + 1}"
        add_time += _run_operator("Add body", lambda: bpy.ops.prosepose.add_body(rig_file=str(rig), name=name))
        armature = bpy.data.objects[name]
        info = body_info(armature)
        # The example's poses are in the engine's model frame: the armature stands where Add
        # body's model_to_world puts it, and the pose carries the placement.
        armature.matrix_world = info.model_to_world.to_4x4()
        pose = EnginePose(dict(person.initial.rotations), tuple(person.initial.root_translation))
        bone_pose = bone_pose_from_engine(armature, info, pose)
        action, slot = new_pose_action(armature, [outcome.frame], [bone_pose], f"{name} initial")
        assign_action(armature, action, slot)
        armatures.append(armature)
        outcome.meshes.append(body_mesh(armature).name)
    outcome.steps_s["Add body"] = add_time
    prose = scene.prose
    if prose.person_1 != armatures[0] or (len(armatures) == 2 and prose.person_2 != armatures[1]):
        raise DemoError("Add body did not make the bodies Person 1 and Person 2")
    scene.frame_set(outcome.frame)
    return [body_mesh(a) for a in armatures]


# ------------------------------------------------------------------------------- one example

def run_example(example: Example, out: Path, rigs: Path, live: bool, image: Path | None) -> Outcome:
    import bpy
    import numpy as np

    from tools.demo import pictures
    from tools.demo.measure import measure

    outcome = Outcome(example.name, example.title, example.num_people, "live" if live else "replay",
                      str(image or example.image_path))
    say(f"{example.name}: {example.title} ({example.num_people} {'person' if example.num_people == 1 else 'people'})")
    meshes = load_scene(example, rigs, outcome)
    scene = bpy.context.scene
    prefs = bpy.context.preferences.addons["prosepose"].preferences
    prefs.lmm_replay_file = "" if live else str(example.answers_path)
    scene.prose.reference_image = outcome.image
    say(f"  bodies added ({outcome.steps_s['engine rig (body shapes)']:.1f} s engine rig, {outcome.steps_s['Add body']:.1f} s Add body)")

    source = f"the model {prefs.lmm_model} at {prefs.lmm_base_url or 'OpenAI'}" if live else "the example's 20 answers (replay)"
    say(f"  Find contacts: {source}")
    outcome.steps_s["Find contacts"] = _run_operator("Find contacts", lambda: bpy.ops.prosepose.find_contacts())
    outcome.found = [
        f"P{c.person_a} {c.part_a} - " + (c.part_b if c.part_b == "ground" else f"P{c.person_b} {c.part_b}") + f" ({c.count} of {scene.prose.lmm_sample_count} answers)"
        for c in scene.prose.contacts
    ]
    say(f"  found {len(outcome.found)} contact(s) in {outcome.steps_s['Find contacts']:.1f} s: {'; '.join(outcome.found) or 'none'}")
    if not outcome.found:
        raise DemoError(f"{example.name}: Find contacts gave no contact")

    outcome.steps_s["Show regions"] = _run_operator("Show regions", lambda: bpy.ops.prosepose.show_regions())
    pictures.add_floor(scene)
    before = measure(meshes, example.contacts)
    points_before = _points(meshes)

    say("  Refine (engine subprocess)")
    outcome.steps_s["Refine"] = _run_operator("Refine", lambda: bpy.ops.prosepose.refine())
    scene.frame_set(outcome.frame)
    after = measure(meshes, example.contacts)
    outcome.contacts = [ContactRow(example.contact_label(c), b, a) for c, b, a in zip(example.contacts, before.distances_m, after.distances_m)]
    outcome.penetration_before_m, outcome.penetration_after_m = before.penetration_m, after.penetration_m
    outcome.lowest_before_m, outcome.lowest_after_m = list(before.lowest_m), list(after.lowest_m)
    outcome.addon_results = [ContactRow(r.label, r.before, r.after) for r in scene.prose.results]
    for row in outcome.contacts:
        say(f"  {row.label}: {100 * row.before_m:.1f} cm -> {100 * row.after_m:.2f} cm")
    say(f"  deepest penetration {1000 * after.penetration_m:.1f} mm; lowest points "
        + ", ".join(f"{100 * z:+.1f} cm" for z in after.lowest_m) + f"; refine {outcome.steps_s['Refine']:.1f} s")

    # Pictures: the same camera for before and after, framed on both poses.
    started = time.perf_counter()
    pictures.frame_camera(scene, np.concatenate([points_before, _points(meshes)]), example.camera.azimuth_deg,
                          example.camera.elevation_deg, RESOLUTION)
    after_png = pictures.render(scene, out / f"{example.name}-after.png", "VERTEX")
    before_png = _render_original(scene, out / f"{example.name}-before.png")
    side = pictures.side_by_side(
        [(Path(outcome.image), "reference image"), (before_png, "initial pose, contact regions coloured"),
         (after_png, "refined")],
        out / f"{example.name}-side-by-side.png", title=f"{example.title}: reference, before, after",
    )
    outcome.steps_s["Render"] = time.perf_counter() - started
    started = time.perf_counter()
    blend = out / f"{example.name}.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend), check_existing=False, compress=True)
    outcome.steps_s["Save .blend"] = time.perf_counter() - started
    outcome.files = {"blend": blend.name, "before": before_png.name, "after": after_png.name, "side_by_side": side.name}
    return outcome


def _points(meshes):
    """Every seventh deformed vertex of the bodies (world space): enough to frame them."""
    import numpy as np

    from tools.demo.measure import evaluated_vertices

    return np.concatenate([evaluated_vertices(m)[::7] for m in meshes])


def _render_original(scene, path: Path) -> Path:
    """Render the original animation: the refinement tracks muted for the render, then unmuted."""
    from tools.demo import pictures
    from prosepose.prose_blender.layers import refinement_track

    tracks = [refinement_track(o) for o in scene.objects if o.type == "ARMATURE"]
    tracks = [t for t in tracks if t is not None]
    for track in tracks:
        track.mute = True
    try:
        scene.frame_set(scene.frame_current)
        return pictures.render(scene, path, "VERTEX")
    finally:
        for track in tracks:
            track.mute = False
        scene.frame_set(scene.frame_current)


# ------------------------------------------------------------------------------- report

def _cm(value: float) -> str:
    return f"{100 * value:.2f}"


def write_report(out: Path, outcomes: list[Outcome], total_s: float, mode: str) -> Path:
    lines = ["# ProsePose demo report", ""]
    if mode == "replay":
        lines += ["Answers: each example's 20 example answers (`answers.json`, written for the demo, not recorded "
                  "from a model), replayed through the add-on's Find contacts; everything after them is the live path.", ""]
    else:
        lines += ["Answers: asked live from the language model named in the run's environment.", ""]
    lines += [
        "Distances are measured on Blender's evaluated meshes (full region vertex sets) at the refined frame; "
        "penetration is the deepest body-into-body penetration (between the two people, or between one "
        "person's contact regions).",
        "",
        "| example | contact | before (cm) | after (cm) | max penetration after (mm) | result |",
        "|---|---|---:|---:|---:|---|",
    ]
    for o in outcomes:
        for row in o.contacts:
            verdict = "ok" if o.passed else "NOT MET"
            lines.append(f"| {o.name} | {row.label} | {_cm(row.before_m)} | {_cm(row.after_m)} | "
                         f"{1000 * o.penetration_after_m:.1f} | {verdict} |")
    lines += ["", f"Acceptance: every contact farther than {100 * FAR_BEFORE_M:g} cm before and within "
              f"{100 * WITHIN_AFTER_M:g} cm after, no penetration deeper than {100 * MAX_PENETRATION_M:g} cm. "
              f"Total time {total_s:.0f} s.", ""]
    for o in outcomes:
        lines += [f"## {o.title} (`{o.name}`)", "", f"![{o.name}]({o.files.get('side_by_side', '')})", ""]
        lines += [f"Reference image: `{o.image}`. Blender file: `{o.files.get('blend', '')}` (the original pose on "
                  "its own NLA track, the refinement on the 'ProsePose refinement' track above it).", ""]
        lines += ["Find contacts filled the list with:", ""] + [f"- {f}" for f in o.found] + [""]
        lines += ["| contact (ground truth) | before (cm) | after (cm) |", "|---|---:|---:|"]
        lines += [f"| {r.label} | {_cm(r.before_m)} | {_cm(r.after_m)} |" for r in o.contacts]
        lines += ["", "The add-on's result list (its contacts as the answers named them; each is measured, and Refine "
                  "weighs them as the method does: for one person only rows named by at least 10 answers (10 of 20) "
                  "count, for two people each answer's table is one term, so a row counts as often as answers name it):", "",
                  "| contact | before (cm) | after (cm) |", "|---|---:|---:|"]
        lines += [f"| {r.label} | {_cm(r.before_m)} | {_cm(r.after_m)} |" for r in o.addon_results]
        lines += ["", f"Largest penetration: {1000 * o.penetration_before_m:.1f} mm before, "
                  f"{1000 * o.penetration_after_m:.1f} mm after. Lowest point (the floor is z = 0): "
                  + ", ".join(f"P{i + 1} {100 * b:+.1f} -> {100 * a:+.1f} cm"
                              for i, (b, a) in enumerate(zip(o.lowest_before_m, o.lowest_after_m))) + ".", ""]
        lines += ["| step | time (s) |", "|---|---:|"] + [f"| {k} | {v:.1f} |" for k, v in o.steps_s.items()] + [""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    (out / "report.json").write_text(json.dumps({
        "mode": mode, "total_s": total_s,
        "acceptance": {"far_before_m": FAR_BEFORE_M, "within_after_m": WITHIN_AFTER_M, "max_penetration_m": MAX_PENETRATION_M},
        "examples": [asdict(o) | {"passed": o.passed} for o in outcomes],
    }, indent=1), encoding="utf-8")
    return path


def _no_key_in(out: Path) -> None:
    """Live mode: the key must appear in no file the demo wrote, caches and logs included (it
    only ever travels in the engine process's environment)."""
    key = os.environ.get(API_KEY_ENV, "").strip()
    if len(key) < 8:
        return
    for path in out.rglob("*"):
        if path.is_file() and not path.is_symlink() and key.encode() in path.read_bytes():
            raise DemoError(f"the API key was found in {path}: delete that file; this is a bug, please report it")


# ------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=Path, default=ROOT / "examples", help="examples folder (default examples/)")
    parser.add_argument("--out", type=Path, default=ROOT / "demo_out", help="output folder (default demo_out/)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="only this example (repeatable)")
    parser.add_argument("--image", type=Path, default=None,
                        help="live mode on your own image: Find contacts asks the model about it, and the contacts "
                        "it names refine the poses of the bundled example(s) with --people people")
    parser.add_argument("--people", type=int, choices=(1, 2), default=2, help="people in --image (default 2)")
    parser.add_argument("--live", action="store_true",
                        help="ask the model (LMM_BASE_URL, LMM_MODEL, key in OPENAI_API_KEY) instead of the replay "
                        "(also implied when LMM_BASE_URL or LMM_MODEL is set)")
    args = parser.parse_args(argv)
    live = args.live or args.image is not None or bool(os.environ.get("LMM_BASE_URL") or os.environ.get("LMM_MODEL"))
    if args.image is not None and not args.image.is_file():
        parser.error(f"--image {args.image}: no such file")
    if not ENGINE_PYTHON.is_file():
        parser.error(f"the engine's environment {ENGINE_PYTHON} is missing: run 'make venv' (make demo does)")
    try:
        folders = example_folders(args.examples)
    except OSError as error:
        parser.error(f"cannot read the examples folder {args.examples}: {error.strerror or error}")
    if args.only:
        unknown = sorted(set(args.only) - {f.name for f in folders})
        if unknown:
            parser.error(f"unknown example(s) {unknown}; bundled: {', '.join(f.name for f in folders)}")
        folders = [f for f in folders if f.name in args.only]
    try:
        examples = [load_example(f) for f in folders]
    except ExampleError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 2
    if args.image is not None:
        examples = [e for e in examples if e.num_people == args.people][:1]
        if not examples:
            parser.error(f"no bundled example has {args.people} people")
    if not examples:
        parser.error("no example to run")

    started = time.perf_counter()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="prosepose-demo-"))
    mode = "live" if live else "replay"
    say(f"{len(examples)} example(s), {mode} mode; outputs in {out}")
    if live:
        say(f"  endpoint {os.environ.get('LMM_BASE_URL') or 'OpenAI'}, model {os.environ.get('LMM_MODEL') or 'gpt-4o'}; "
            f"key {'from ' + API_KEY_ENV if os.environ.get(API_KEY_ENV) else 'none (a local endpoint needs none)'}")
    outcomes: list[Outcome] = []
    try:
        import bpy  # noqa: F401  (headless Blender: the pip module)

        enable_addon(work)
        configure(out / ".cache", live)
        for example in examples:
            image = args.image.resolve() if args.image is not None else None
            # Rigs are kept between runs next to the outputs: the engine writes the same file for a shape.
            outcomes.append(run_example(example, out, out / ".rigs", live, image))
    except DemoError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 1
    total = time.perf_counter() - started
    report = write_report(out, outcomes, total, mode)
    if live:
        try:
            _no_key_in(out)
        except DemoError as error:
            print(f"demo: {error}", file=sys.stderr)
            return 1
    say(f"done in {total:.0f} s")
    for o in outcomes:
        say(f"  {o.name}: " + "; ".join(f"{r.label} {_cm(r.before_m)} -> {_cm(r.after_m)} cm" for r in o.contacts)
            + f"; penetration {1000 * o.penetration_after_m:.1f} mm" + ("" if o.passed or live else "  NOT MET"))
    say(f"outputs: {out} (report: {report}; open the .blend files in Blender 4.2+ with the add-on installed)")
    if not live and not all(o.passed for o in outcomes):
        say("some example did not meet the acceptance (see the report)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
