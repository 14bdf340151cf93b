"""Write the bundled demo scenes under ``examples/`` from the project's scene generator.

    .venv/bin/python tools/make_examples.py              # every example, checked, written
    .venv/bin/python tools/make_examples.py --only hand-on-knee
    .venv/bin/python tools/make_examples.py --check-only # check the engine restores each, write nothing

Each example is one scene of ``engine.synth`` (DESIGN.md section 4, "Evaluation discipline"):
a ground truth solved so the contact holds, an initial pose perturbed the way a pose regressor
errs (the contact open by 10-60 cm) and 20 noisy answers in the format real models write
(``engine/synth/answers.py``). Their seeds are outside both benchmark seed sets
(``TUNING_SEEDS``, ``REPORT_SEEDS``), so the demo shows nothing the defaults were chosen on and
the benchmarks count nothing shown here.

Before writing, each scene is refined the way ``python -m engine refine`` would (its answers
through the real parser, a job with the engine's defaults): an example is written only when
its contacts start farther than ``MIN_BEFORE_M`` and end within ``MAX_AFTER_M`` with no
penetration deeper than ``MAX_PENETRATION_M`` (tighter than the demo's 1 cm acceptance, so a
change of the engine's defaults leaves room).

Written per example (``tools/demo/example.py`` reads and checks them): ``scene.json`` (the
initial and ground-truth poses in the engine's job convention, the contacts, the camera),
``answers.json`` (a replay file of the 20 answers) and ``reference.png`` (rendered here with
Blender's Workbench from the ground truth: the project's own picture, free to ship)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.synth import GENERATOR_VERSION, REPORT_SEEDS, TUNING_SEEDS, SynthContext, contact_type_of, generate_scene  # noqa: E402

EXAMPLES_DIR = ROOT / "examples"
MIN_BEFORE_M = 0.05
MAX_AFTER_M = 0.006
MAX_PENETRATION_M = 0.005
RESOLUTION = (640, 480)
ANSWERS_SOURCE = (
    "Example answers written for the ProsePose demo by the project's scene generator "
    "(engine/synth/answers.py, seeded): not recorded from a language model."
)


@dataclass(frozen=True)
class ExampleSpec:
    name: str
    seed: int
    title: str
    description: str
    # Camera for the contact on the right side (azimuth degrees: 0 from the front, -90 from
    # the person's right); mirrored when the generator drew the left side.
    azimuth_deg: float
    elevation_deg: float


EXAMPLES: tuple[ExampleSpec, ...] = (
    ExampleSpec("hand-on-shoulder", 900060, "A hand resting on the partner's shoulder",
                "Two people face each other; Person 1's hand rests on the front of Person 2's shoulder.", -60.0, 12.0),
    ExampleSpec("holding-hands", 900009, "Holding hands",
                "Two people stand side by side and hold hands.", 0.0, 12.0),
    ExampleSpec("hand-on-knee", 900056, "A hand on one's own knee",
                "One person bends forward a little with a hand resting on the knee of the same side.", -40.0, 12.0),
    ExampleSpec("foot-on-thigh", 900001, "A foot on the other thigh",
                "One person balances in a tree pose, the sole of one foot against the other thigh.", -20.0, 8.0),
)


def _person_pose(state, person: int, joint_names) -> dict:
    from engine.refine.losses.geometry import matrix_to_quaternion

    quaternions = matrix_to_quaternion(state.local_rotations[person]).double().numpy()
    return {
        "shape": [round(float(v), 8) for v in state.shape[person]],
        "rotations": {name: [round(float(v), 8) for v in quaternions[j]] for j, name in enumerate(joint_names)},
        "root_translation": [round(float(v), 8) for v in state.root_translation[person]],
    }


def check_scene(scene, context) -> dict:
    """The scene refined as ``python -m engine refine`` would: figures and whether they pass."""
    from engine.lmm.parser import parse_response
    from engine.refine.run import people_state, run_job
    from engine.synth.poses import contact_distances, penetration_depth, posed_vertices
    from engine.synth.scene import scene_job

    body, regions = context.body, context.regions
    samples = [parse_response(text, scene.num_people) for text in scene.answers]
    job = scene_job(scene, body.joint_names, samples)
    result = run_job(job, body, regions)
    after_vertices, _ = posed_vertices(body, people_state(body, result.frames[0].people, "result"))
    before_vertices, _ = posed_vertices(body, scene.initial)
    before = contact_distances(regions, scene.contacts, before_vertices)
    after = contact_distances(regions, scene.contacts, after_vertices)
    penetration = penetration_depth(body, regions, scene.contacts, after_vertices)
    passed = min(before) > MIN_BEFORE_M and max(after) <= MAX_AFTER_M and penetration <= MAX_PENETRATION_M
    return {"before_m": before, "after_m": after, "penetration_m": penetration, "passed": passed}


def render_reference(scene, context, spec: ExampleSpec, camera: tuple[float, float], out: Path) -> None:
    """The ground truth as Blender meshes on a floor, rendered with Workbench."""
    import bpy

    from engine.synth.poses import posed_vertices
    from tools.demo.pictures import PERSON_COLOURS, add_floor, frame_camera, render

    bpy.ops.wm.read_homefile(use_empty=True)
    blender_scene = bpy.context.scene
    vertices, _ = posed_vertices(context.body, scene.ground_truth)
    to_world = np.asarray(context.body.model_to_world, dtype=np.float64)
    faces = np.asarray(context.body.faces).tolist()
    points = []
    for person in range(scene.num_people):
        world = vertices[person].double().numpy() @ to_world.T
        mesh = bpy.data.meshes.new(f"Person {person + 1}")
        mesh.from_pydata(world.tolist(), [], faces)
        mesh.shade_smooth()
        obj = bpy.data.objects.new(f"Person {person + 1}", mesh)
        obj.color = PERSON_COLOURS[person]
        blender_scene.collection.objects.link(obj)
        points.append(world[::7])
    add_floor(blender_scene)
    frame_camera(blender_scene, np.concatenate(points), camera[0], camera[1], RESOLUTION)
    render(blender_scene, out, "OBJECT")


def write_example(spec: ExampleSpec, context, check_only: bool) -> bool:
    from engine.lmm.replay import write_replay
    from tools.demo.example import ANSWERS_FILE, EXAMPLE_FORMAT, EXAMPLE_VERSION, IMAGE_FILE, SCENE_FILE, load_example

    if spec.seed in TUNING_SEEDS or spec.seed in REPORT_SEEDS:
        raise SystemExit(f"{spec.name}: seed {spec.seed} is a benchmark seed; pick one outside both sets")
    scene = generate_scene(spec.seed, context=context)
    figures = check_scene(scene, context)
    cm = lambda values: ", ".join(f"{100 * v:.1f}" for v in values)  # noqa: E731
    print(f"{spec.name} (seed {spec.seed}, {scene.contact_type}, side {scene.side or '-'}): contact {cm(figures['before_m'])} cm "
          f"-> {cm(figures['after_m'])} cm, penetration {1000 * figures['penetration_m']:.1f} mm: "
          f"{'ok' if figures['passed'] else 'NOT RESTORED with margin'}", flush=True)
    if not figures["passed"] or check_only:
        return figures["passed"]
    folder = EXAMPLES_DIR / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    azimuth = spec.azimuth_deg if scene.side != "left" else -spec.azimuth_deg
    joint_names = context.body.joint_names
    data = {
        "format": EXAMPLE_FORMAT,
        "version": EXAMPLE_VERSION,
        "name": spec.name,
        "title": spec.title,
        "description": spec.description,
        "contact_type": scene.contact_type,
        "seed": spec.seed,
        "num_people": scene.num_people,
        "contacts": [list(c) for c in scene.contacts],
        "people": [
            {"name": f"Person {p + 1}", "initial": _person_pose(scene.initial, p, joint_names),
             "ground_truth": _person_pose(scene.ground_truth, p, joint_names)}
            for p in range(scene.num_people)
        ],
        "camera": {"azimuth_deg": azimuth, "elevation_deg": spec.elevation_deg},
        "made_by": f"tools/make_examples.py from engine.synth generator version {GENERATOR_VERSION}, seed {spec.seed}",
    }
    (folder / SCENE_FILE).write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
    write_replay(folder / ANSWERS_FILE, scene.answers, scene.num_people, ANSWERS_SOURCE)
    render_reference(scene, context, spec, (azimuth, spec.elevation_deg), folder / IMAGE_FILE)
    load_example(folder)  # what the demo will read back
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="only this example (repeatable)")
    parser.add_argument("--check-only", action="store_true", help="check the engine restores each scene; write nothing")
    args = parser.parse_args(argv)
    known = {spec.name for spec in EXAMPLES}
    unknown = [name for name in args.only if name not in known]
    if unknown:
        parser.error(f"unknown example(s) {unknown}; known: {', '.join(sorted(known))}")
    torch.set_num_threads(1)
    context = SynthContext.shared()
    failed = []
    for spec in EXAMPLES:
        if args.only and spec.name not in args.only:
            continue
        if contact_type_of(spec.seed).num_people not in (1, 2):
            raise SystemExit(f"{spec.name}: unexpected scene")
        if not write_example(spec, context, args.check_only):
            failed.append(spec.name)
    if failed:
        print(f"not written (the engine does not restore them with margin): {', '.join(failed)}")
        return 1
    print("examples " + ("checked" if args.check_only else f"written to {EXAMPLES_DIR}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
