"""``make demo`` (tools/demo/run.py) on the smallest bundled example, as a user runs it: a real
process with headless Blender, the add-on's operators and the engine subprocess. Replay mode:
the outputs are there, and the report's distances are measured again on the saved .blend (the
refinement track on for after, muted for before). Live mode against a local OpenAI-compatible
server: the key reaches the endpoint and no file the demo writes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import bpy
import pytest
from PIL import Image

from conftest import REPO_ROOT
from support.blender_helpers import enabled_addon  # noqa: F401
from support.fake_openai_server import FakeOpenAIServer

EXAMPLE = "hand-on-knee"  # one person: the smallest and quickest
SECRET = "sk-demo-test-not-a-real-key-5b1f"


def _run_demo(out: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "LMM_"))}
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "tools.demo.run", "--only", EXAMPLE, "--out", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


def _report_rows(report: str) -> list[tuple[str, float, float]]:
    """(contact, before cm, after cm) of the example's ground-truth contacts, from the report's
    summary table (| example | contact | before | after | penetration | result |)."""
    rows = re.findall(rf"^\| {EXAMPLE} \| ([^|]+?) \| ([\d.]+) \| ([\d.]+) \| [\d.]+ \| ok \|$", report, flags=re.M)
    return [(label, float(before), float(after)) for label, before, after in rows]


@pytest.fixture(scope="module")
def replay_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_out")
    done = _run_demo(out)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, done.stdout


def test_the_demo_writes_blend_renders_and_report(replay_run):
    out, stdout = replay_run
    for suffix in (".blend", "-before.png", "-after.png", "-side-by-side.png"):
        assert (out / f"{EXAMPLE}{suffix}").is_file(), suffix
    for suffix in ("-before.png", "-after.png"):
        with Image.open(out / f"{EXAMPLE}{suffix}") as image:
            assert image.size == (640, 480)
            assert len(image.convert("RGB").resize((64, 48)).getcolors(maxcolors=64 * 48)) > 50  # a picture, not a blank
    with Image.open(out / f"{EXAMPLE}-side-by-side.png") as image:
        assert image.width > 3 * 400
    report = (out / "report.md").read_text()
    assert "written for the demo, not recorded" in report and "| Find contacts |" in report and "| Refine |" in report
    assert f"outputs: {out}" in stdout
    rows = _report_rows(report)
    assert rows and all(before > 3.0 and after <= 1.0 for _label, before, after in rows)
    penetration = float(re.search(r"Largest penetration: [\d.]+ mm before, ([\d.]+) mm after", report).group(1))
    assert penetration <= 10.0


def test_the_reports_distances_hold_on_the_saved_blend(replay_run, enabled_addon):
    from prosepose.prose_blender.layers import TRACK_NAME
    from tools.demo.example import load_example
    from tools.demo.measure import measure

    out, _stdout = replay_run
    example = load_example(REPO_ROOT / "examples" / EXAMPLE)
    rows = _report_rows((out / "report.md").read_text())
    try:
        bpy.ops.wm.open_mainfile(filepath=str(out / f"{EXAMPLE}.blend"))
        scene = bpy.context.scene
        assert scene.prose.lmm_sample_count == 20 and len(scene.prose.contacts) > 0
        armatures = [scene.prose.person_1, scene.prose.person_2][: example.num_people]
        meshes = [bpy.data.objects[f"{a.name}_body"] for a in armatures]
        tracks = [a.animation_data.nla_tracks for a in armatures]
        # Original and refinement on their own tracks, the refinement on top.
        assert all(t[-1].name == TRACK_NAME and len(t) >= 2 for t in tracks)
        scene.frame_set(1)
        after = measure(meshes, example.contacts)
        for t in tracks:
            t[-1].mute = True
        scene.frame_set(1)
        before = measure(meshes, example.contacts)
    finally:
        bpy.ops.wm.read_homefile(use_empty=True)
    assert len(rows) == len(example.contacts)
    for (label, before_cm, after_cm), b, a in zip(rows, before.distances_m, after.distances_m):
        print(f"{label}: report {before_cm:.2f} -> {after_cm:.2f} cm, saved .blend {100 * b:.3f} -> {100 * a:.3f} cm")
        assert abs(100 * b - before_cm) < 0.01 and abs(100 * a - after_cm) < 0.01
        assert b > 0.03 and a <= 0.01
    assert after.penetration_m <= 0.01


def test_live_mode_asks_the_endpoint_and_writes_no_key(tmp_path):
    answer = "The person leans forward.\n\n| Part | Part |\n|---|---|\n| hand | knee |\n"
    out = tmp_path / "live"
    with FakeOpenAIServer(texts=[answer]) as server:
        done = _run_demo(out, {"LMM_BASE_URL": server.base_url, "LMM_MODEL": "test-vision-model", "OPENAI_API_KEY": SECRET})
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert server.received and server.received[0].body["model"] == "test-vision-model"
        assert server.received[0].headers.get("authorization") == f"Bearer {SECRET}"
    assert "live mode" in done.stdout and SECRET not in done.stdout + done.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "engine.log" for p in files) and any(p.suffix == ".blend" for p in files)
    assert not [p for p in files if SECRET.encode() in p.read_bytes()]
    assert "hand - P1 leg (20 of 20 answers)" in (out / "report.md").read_text()
