"""Issue 18 points 2, 4 and 7 for ``python -m engine contacts``: ``--timeout`` is a total time
per request and ``--deadline`` bounds the whole command (a trickling endpoint on 127.0.0.1 no
longer keeps it running); huge answers are stored cut, and the file says so; SIGTERM ends it
with a JSON error line; the contacts file and the cache entry are flushed before the rename."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import REPO_ROOT
from support.fake_openai_server import FakeOpenAIServer


@pytest.fixture(scope="module")
def image_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("image") / "two_people.png"
    Image.new("RGB", (320, 240), (200, 180, 160)).save(path)
    return path


def _command(image: Path, server: FakeOpenAIServer, output: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "engine", "contacts", str(image), "--people", "2", "--samples", "2",
            "--base-url", server.base_url, "--no-cache", "-o", str(output), *extra]


def _run(command: list[str], limit_s: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-not-real"}
    completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=limit_s)
    return completed, time.monotonic() - started


def _last_event(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_timeout_is_a_total_deadline_per_request(image_path, tmp_path):
    output = tmp_path / "contacts.json"
    with FakeOpenAIServer(default=("trickle", 0.5)) as server:
        completed, elapsed = _run(_command(image_path, server, output, "--timeout", "3", "--retries", "0"))
    assert completed.returncode == 2, completed.stdout + completed.stderr
    error = _last_event(completed.stdout)
    assert error["event"] == "error" and "timed out" in error["message"] and "--timeout 3 s" in error["message"]
    assert elapsed < 20  # startup (torch is not imported here) plus the 3 s
    assert not output.exists()


def test_overall_deadline_bounds_retries(image_path, tmp_path):
    output = tmp_path / "contacts.json"
    with FakeOpenAIServer(default=("trickle", 0.5)) as server:
        completed, elapsed = _run(
            _command(image_path, server, output, "--timeout", "2", "--retries", "50", "--backoff", "0", "--deadline", "5")
        )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    message = _last_event(completed.stdout)["message"]
    assert "overall deadline of 5 s (--deadline)" in message
    assert elapsed < 25
    assert len(server.received) <= 4
    assert not output.exists()


def test_rate_limit_loop_ends_at_the_deadline(image_path, tmp_path):
    output = tmp_path / "contacts.json"
    with FakeOpenAIServer(default=("status", 429, {"Retry-After": "2"})) as server:
        completed, elapsed = _run(_command(image_path, server, output, "--deadline", "3"))
    assert completed.returncode == 2
    assert "overall deadline of 3 s" in _last_event(completed.stdout)["message"]
    assert elapsed < 20


def test_help_states_the_deadline_default():
    completed = subprocess.run([sys.executable, "-m", "engine", "contacts", "--help"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=60)
    text = " ".join(completed.stdout.split())
    assert "--deadline" in text and "(default 300 = 5 minutes)" in text
    assert "seconds one request may take in total" in text


def test_sigterm_prints_a_json_error_line(image_path, tmp_path):
    output = tmp_path / "contacts.json"
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-not-real"}
    with FakeOpenAIServer(default=("trickle", 0.5)) as server:
        process = subprocess.Popen(_command(image_path, server, output, "--timeout", "60"), cwd=REPO_ROOT, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not server.received and time.monotonic() < deadline:
                time.sleep(0.1)
            assert server.received, "the engine never asked"
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 143, stdout + stderr
    error = _last_event(stdout)
    assert error == {"event": "error", "message": "stopped by SIGTERM; no contacts file was written"}
    assert "Traceback" not in stderr
    assert not output.exists()


def test_huge_answers_are_stored_cut_and_the_file_says_so(image_path, tmp_path):
    from engine.contacts.file import ContactsFile

    row = "| hand | shoulder |\n| wing | tail |\n"
    huge = "| Person 1 part | Person 2 part |\n|---|---|\n" + row * 150_000  # about 5 MB
    output = tmp_path / "contacts.json"
    with FakeOpenAIServer(texts=[huge, "| Person 1 part | Person 2 part |\n|---|---|\n| hand | hand |\n"]) as server:
        completed, _ = _run(_command(image_path, server, output))
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert output.stat().st_size < 2_000_000
    data = json.loads(output.read_text())
    assert data["schema_version"] == 3 and data["response_char_limit"] == 40_000
    assert len(data["raw_responses"][0]) == 40_000
    assert data["cut_responses"] == [{"index": 0, "chars": len(huge)}]
    ContactsFile.read(output)  # reads back
    import jsonschema

    schema = json.loads((REPO_ROOT / "schemas" / "contacts.schema.json").read_text())
    jsonschema.validate(data, schema)
    for line in completed.stdout.splitlines():
        assert len(line) < 20_000
    summary = _last_event(completed.stdout)
    assert summary["event"] == "contacts" and summary["cut_responses"] == 1 and len(summary["notes"]) <= 20


def test_contacts_file_and_cache_are_flushed_before_the_rename(tmp_path, monkeypatch):
    from engine.contacts.file import ContactsFile, TokenUsage
    from engine.lmm.cache import ResponseCache

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])

    contacts = ContactsFile(
        image_sha256="0" * 64, num_people=1, model="m", base_url="http://127.0.0.1/v1", prompt_id="p",
        samples_requested=1, temperature=0.7, max_tokens=10, boxes=(), raw_responses=(), samples=(),
        summary=(), usage=TokenUsage(), created="2024-01-01T00:00:00Z", empty_backoff=1, backed_off=False,
    )
    contacts.write(tmp_path / "contacts.json")
    assert events == ["fsync", "replace"]
    events.clear()
    ResponseCache(tmp_path / "cache").store("k" * 64, ["text"], TokenUsage(), [(0, 50_000)])
    assert events == ["fsync", "replace"]
    assert ResponseCache(tmp_path / "cache").load("k" * 64, 1).cut == ((0, 50_000),)
