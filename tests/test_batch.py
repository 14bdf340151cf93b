"""``python -m engine batch`` on a real Ray (issue 21), as a user runs it: a subprocess that
starts Ray embedded on this machine (or joins a head the test starts on 127.0.0.1), small
Anny jobs, the files it writes and the JSON lines it prints.

A corrupt item is reported and the others finish; a worker killed mid-item has its item
retried with the same result as an undisturbed refinement; an interrupted run resumes and
skips what it finished (by content: an edited job is redone); ``--address`` joins a head;
items with a reference image ask the language model (a fake endpoint on 127.0.0.1) one
request at a time under ``--lmm-concurrency 1`` and through the shared response cache."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT

RAY_CLI = Path(sys.executable).with_name("ray")
TIMEOUT_S = 240


def job_dict(offset_m: float = 0.0, iterations=(15, 5)) -> dict:
    """Two Anny people 0.7 m apart, A's right hand to B's left shoulder (B fixed)."""
    return {
        "schema_version": 1,
        "body": {"kind": "anny", "model_path": None},
        "people": [{"name": "A"}, {"name": "B", "movable": False}],
        "frames": [
            {
                "frame": 1,
                "people": [
                    {"rotations": {}, "root_translation": [offset_m, 0.0, 0.82]},
                    {"rotations": {"root": [0.0, 0.0, 0.0, 1.0]}, "root_translation": [0.0, -0.7, 0.82]},
                ],
            }
        ],
        "constraints": {
            "explicit": [{"person_a": 0, "region_a": "right_hand", "person_b": 1, "region_b": "left_shoulder"}]
        },
        "options": {"iterations": list(iterations), "progress_every": 50},
    }


def write_jobs(folder: Path, count: int, iterations=(15, 5)) -> list[dict]:
    """``count`` job files job<i>.json (each placed a little differently); their manifest lines."""
    lines = []
    for i in range(count):
        (folder / f"job{i}.json").write_text(json.dumps(job_dict(0.02 * i, iterations)), encoding="utf-8")
        lines.append({"id": f"item{i}", "job": f"job{i}.json"})
    return lines


def write_manifest(folder: Path, lines: list[dict]) -> Path:
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def batch_command(manifest: Path, out_dir: Path, *extra: str) -> list[str]:
    # Two workers: the test machines have two cores, and Ray starts one worker per core.
    return [sys.executable, "-m", "engine", "batch", str(manifest), "-o", str(out_dir), "--workers", "2", *extra]


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def run_batch(manifest: Path, out_dir: Path, *extra: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, list[dict]]:
    completed = subprocess.run(batch_command(manifest, out_dir, *extra), cwd=REPO_ROOT, capture_output=True,
                               text=True, timeout=TIMEOUT_S, env=env)
    return completed, json_lines(completed.stdout)


def report(out_dir: Path) -> dict:
    return json.loads((out_dir / "report.json").read_text(encoding="utf-8"))


def records(out_dir: Path) -> dict[str, dict]:
    return {r["id"]: r for r in report(out_dir)["records"]}


def temporary_files(out_dir: Path) -> list[Path]:
    return [p for p in out_dir.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


def comparable(result: dict) -> dict:
    """A result without its timings."""
    result = json.loads(json.dumps(result))
    result.pop("wall_time_s")
    for frame in result["frames"]:
        frame.pop("wall_time_s")
    return result


def test_corrupt_items_are_reported_and_the_others_finish(tmp_path):
    lines = write_jobs(tmp_path, 3)
    lines[0]["ground_truth"] = {
        "frames": [{"frame": 1, "contacts": [{"person_a": 0, "region_a": "right_hand", "person_b": 1, "region_b": "left_shoulder"}]}]
    }
    (tmp_path / "corrupt.json").write_text('{"schema_version": 1, "body": {', encoding="utf-8")
    nan_job = json.dumps(job_dict()).replace('"root_translation": [0.0, 0.0, 0.82]', '"root_translation": [NaN, 0.0, 0.82]')
    (tmp_path / "nan.json").write_text(nan_job, encoding="utf-8")
    no_model = job_dict()
    no_model["body"] = {"kind": "smplx", "model_path": str(tmp_path / "missing" / "SMPLX_NEUTRAL.npz")}
    (tmp_path / "no_model.json").write_text(json.dumps(no_model), encoding="utf-8")
    bad_joint = job_dict()
    bad_joint["frames"][0]["people"][0]["rotations"] = {"no_such_joint": [1.0, 0.0, 0.0, 0.0]}
    (tmp_path / "bad_joint.json").write_text(json.dumps(bad_joint), encoding="utf-8")
    lines[1:1] = [
        {"id": "corrupt", "job": "corrupt.json"},
        {"id": "nan", "job": "nan.json"},
        {"id": "no-model", "job": "no_model.json"},
        {"id": "bad-joint", "job": "bad_joint.json"},
    ]
    out_dir = tmp_path / "out"
    completed, events = run_batch(write_manifest(tmp_path, lines), out_dir)

    assert completed.returncode == 1, completed.stdout + completed.stderr  # some items failed
    done = events[-1]
    assert done["event"] == "done" and (done["items"], done["done"], done["failed"]) == (7, 3, 4)
    by_id = records(out_dir)
    assert {i: r["status"] for i, r in by_id.items()} == {
        "item0": "done", "item1": "done", "item2": "done",
        "corrupt": "failed", "nan": "failed", "no-model": "failed", "bad-joint": "failed",
    }
    assert "corrupt.json is not valid JSON" in by_id["corrupt"]["message"]
    assert "finite" in by_id["nan"]["message"] and "nan.json" in by_id["nan"]["message"]
    assert "cannot load the smplx body" in by_id["no-model"]["message"]
    assert "unknown joint" in by_id["bad-joint"]["message"] and "no_such_joint" in by_id["bad-joint"]["message"]
    from engine.refine.job import Result

    for item in ("item0", "item1", "item2"):
        result = Result.from_dict(json.loads((out_dir / "results" / f"{item}.result.json").read_text()))
        (distance,) = result.frames[0].constraints
        assert distance.after_m < distance.before_m
        (frame,) = by_id[item]["frames"]
        assert frame["constraints"][0]["after_m"] == distance.after_m
    assert sorted(p.name for p in (out_dir / "results").iterdir()) == [f"item{i}.result.json" for i in range(3)]
    # The ground truth's contact pair is scored (PCC over the run) and gets closer.
    evaluation = by_id["item0"]["frames"][0]["evaluation"]
    assert evaluation["contact_after_m"][0] < evaluation["contact_before_m"][0]
    metrics = report(out_dir)["metrics"]
    assert metrics["contact_pairs"] == 1 and metrics["pcc_after"] >= metrics["pcc_before"]
    markdown = (out_dir / "report.md").read_text()
    assert "| corrupt | failed |" in markdown and "PCC" in markdown
    assert any(e["event"] == "item" and e["id"] == "corrupt" and e["status"] == "failed" for e in events)
    assert temporary_files(out_dir) == []


@pytest.fixture(scope="module")
def anny():
    import torch

    from engine.body import load_body
    from engine.body.region_map import body_regions

    torch.set_num_threads(1)
    body = load_body("anny")
    return body, body_regions(body)


def test_a_killed_worker_has_its_item_retried_with_the_right_result(tmp_path, anny):
    lines = write_jobs(tmp_path, 3, iterations=(150, 30))
    out_dir = tmp_path / "out"
    process = subprocess.Popen(batch_command(write_manifest(tmp_path, lines), out_dir), cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    killed: dict | None = None
    events = []
    try:
        for line in process.stdout:
            event = json.loads(line)
            events.append(event)
            if killed is None and event["event"] == "item_start" and event["id"] == "item0":
                os.kill(event["pid"], signal.SIGKILL)  # a Ray worker process this run started
                killed = event
        assert process.wait(timeout=TIMEOUT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert killed is not None
    retry = [e for e in events if e["event"] == "retry"]
    assert any(e["id"] == "item0" for e in retry), events
    victim = records(out_dir)["item0"]
    assert victim["status"] == "done" and victim["attempts"] == 2
    assert victim["worker"] != killed["worker"]
    assert report(out_dir)["run"]["restarted_workers"] == 1
    assert report(out_dir)["done"] == 3

    from engine.refine.job import Job
    from engine.refine.run import run_job

    body, regions = anny
    expected = run_job(Job.from_dict(job_dict(0.0, (150, 30))), body, regions).to_dict()
    written = json.loads((out_dir / "results" / "item0.result.json").read_text())
    assert comparable(written) == comparable(expected)


def test_an_interrupted_run_resumes_without_redoing_finished_items(tmp_path):
    lines = write_jobs(tmp_path, 8, iterations=(60, 10))
    manifest = write_manifest(tmp_path, lines)
    out_dir = tmp_path / "out"
    process = subprocess.Popen(batch_command(manifest, out_dir), cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    events = []
    try:
        for line in process.stdout:
            event = json.loads(line)
            events.append(event)
            if sum(e["event"] == "item" for e in events) == 2:
                process.send_signal(signal.SIGINT)  # Ctrl-C
                break
        events += json_lines(process.stdout.read())
        assert process.wait(timeout=TIMEOUT_S) == 130
    finally:
        if process.poll() is None:
            process.kill()
    assert events[-1]["event"] == "error" and "stopped by SIGINT" in events[-1]["message"]
    first = report(out_dir)
    assert first["interrupted"] and first["not_run"] >= 1 and first["done"] >= 2
    assert temporary_files(out_dir) == []
    finished = sorted(i for i, r in records(out_dir).items() if r["status"] == "done")
    for item in finished:
        json.loads((out_dir / "results" / f"{item}.result.json").read_text())  # whole files
    written_at = {i: (out_dir / "results" / f"{i}.result.json").stat().st_mtime_ns for i in finished}
    # The same file name with other content is not the finished item: it runs again.
    edited = finished[0]
    number = int(edited.removeprefix("item"))
    (tmp_path / f"job{number}.json").write_text(json.dumps(job_dict(0.02 * number, (61, 10))), encoding="utf-8")

    completed, again = run_batch(manifest, out_dir)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert again[0]["event"] == "batch" and again[0]["resumed"] == len(finished) - 1
    started = {e["id"] for e in again if e["event"] == "item_start"}
    assert started == (set(f"item{i}" for i in range(8)) - set(finished)) | {edited}
    for item in finished:
        if item != edited:
            assert (out_dir / "results" / f"{item}.result.json").stat().st_mtime_ns == written_at[item]
    final = report(out_dir)
    assert (final["done"], final["failed"], final["not_run"], final["resumed"]) == (8, 0, 0, len(finished) - 1)
    assert not final["interrupted"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head on 127.0.0.1 (Ray's own `ray start`), with its own token; stopped after."""
    port = _free_port()
    # Ray's single-machine mode keeps the head (and the command joining it) on 127.0.0.1: on
    # Linux Ray otherwise swaps 127.0.0.1 for the machine's address and listens everywhere.
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    command = [
        str(RAY_CLI), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
        "--include-dashboard", "false", "--ray-client-server-port", str(_free_port()),
        "--dashboard-agent-listen-port", str(_free_port()), "--block",
    ]
    # Its own process group: the head's processes (GCS, raylet, workers) are stopped together.
    head = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        for line in head.stdout:
            if "Ray runtime started" in line:
                break
            if time.monotonic() > deadline:
                pytest.fail("the Ray head did not start")
        else:
            pytest.fail(f"ray start ended with {head.wait()}")
        yield f"127.0.0.1:{port}", env
    finally:
        for sig, wait_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
            try:
                os.killpg(head.pid, sig)
            except ProcessLookupError:
                break
            try:
                head.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        # `ray start` names its cluster the machine's current one; a stopped head is not.
        current = Path("/tmp/ray/ray_current_cluster")
        if current.is_file() and current.read_text().strip().endswith(f":{port}"):
            current.unlink(missing_ok=True)


def test_address_joins_a_ray_head_started_on_loopback(tmp_path, ray_head):
    address, env = ray_head
    lines = write_jobs(tmp_path, 2)
    out_dir = tmp_path / "out"
    completed, events = run_batch(write_manifest(tmp_path, lines), out_dir, "--address", address, env=env)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    workers = next(e for e in events if e["event"] == "workers")
    assert workers["address"] == address and len(workers["workers"]) == 2
    final = report(out_dir)
    assert final["done"] == 2 and final["run"]["address"] == address
    assert all((out_dir / "results" / f"item{i}.result.json").is_file() for i in range(2))


def test_without_ray_it_says_how_to_install_it(tmp_path):
    script = (
        "import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
        "from engine.cli import main\n"
        f"sys.exit(main(['batch', {str(tmp_path / 'm.jsonl')!r}, '-o', {str(tmp_path / 'out')!r}]))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    (error,) = json_lines(completed.stdout)
    assert error["event"] == "error" and "pip install -r requirements/batch.txt" in error["message"]
    assert not (tmp_path / "out").exists()


def test_a_bad_manifest_line_is_refused_before_anything_runs(tmp_path):
    lines = write_jobs(tmp_path, 1)
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps(lines[0]) + "\n" + json.dumps({"jobb": "job0.json"}) + "\n", encoding="utf-8")
    completed, events = run_batch(manifest, tmp_path / "out")
    assert completed.returncode == 2
    assert events[-1]["event"] == "error"
    assert f"manifest {manifest}, line 2" in events[-1]["message"] and "'jobb'" in events[-1]["message"]
    assert not (tmp_path / "out").exists()


SHOULDER = "| Person 1 part | Person 2 part |\n|---|---|\n| hand | shoulder (front) |\n"


def test_items_with_an_image_ask_the_model_within_the_limit_and_through_the_cache(tmp_path):
    from PIL import Image

    from support.fake_openai_server import FakeOpenAIServer

    lines = write_jobs(tmp_path, 2)
    for i, line in enumerate(lines):
        Image.new("RGB", (64, 48), (40 * i, 90, 120)).save(tmp_path / f"frame{i}.png")  # different images
        line["image"] = f"frame{i}.png"
        line["boxes"] = ["0,0,30,48", "30,0,64,48"]
    manifest = write_manifest(tmp_path, lines)
    cache = tmp_path / "lmm-cache"
    with FakeOpenAIServer(texts=[SHOULDER], default=("sleep", 1.0)) as server:
        lmm = ["--base-url", server.base_url, "--samples", "2", "--lmm-concurrency", "1", "--lmm-cache-dir", str(cache)]
        completed, events = run_batch(manifest, tmp_path / "out", *lmm)
        assert completed.returncode == 0, completed.stdout + completed.stderr
        asked = sorted(request.time for request in server.received)
        # Again, into another folder: every answer comes from the shared response cache.
        again, _ = run_batch(manifest, tmp_path / "out-again", *lmm)
        assert again.returncode == 0, again.stdout + again.stderr
        assert len(server.received) == len(asked)
    assert len(asked) == 2 and all(request.body["n"] == 2 for request in server.received)
    # One request in flight at a time: each answer takes 1 s, so none starts before the last ended.
    assert all(later - earlier >= 1.0 for earlier, later in zip(asked, asked[1:])), asked
    by_id = records(tmp_path / "out")
    for i in range(2):
        record = by_id[f"item{i}"]
        assert record["status"] == "done" and record["contacts_file"] == f"contacts/item{i}.contacts.json"
        contacts = json.loads((tmp_path / "out" / record["contacts_file"]).read_text())
        assert contacts["num_people"] == 2 and len(contacts["samples"]) == 2
        result = json.loads((tmp_path / "out" / "results" / f"item{i}.result.json").read_text())
        # The answers' samples joined the job's own contact.
        labels = [c["label"] for c in result["frames"][0]["constraints"]]
        assert sum(label.startswith("LMM sample") for label in labels) == 2 and len(labels) == 3
