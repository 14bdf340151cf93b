"""The real openai client against a real OpenAI-compatible HTTP server on 127.0.0.1, and the
real ``python -m engine contacts`` command in a subprocess."""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from PIL import Image

from engine.lmm.client import ClientSettings, LmmError, SamplingRequest, sample_responses
from engine.lmm.image import encode_image
from engine.lmm.prompts import build_prompt
from tests.data.lmm_responses import CASES
from tests.support.fake_openai_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "schemas/contacts.schema.json").read_text())
SECRET = "sk-test-DO-NOT-LEAK-3f9a1c"
TWO_PEOPLE_TEXTS = [case.text for case in CASES if case.num_people == 2]


@pytest.fixture(scope="module")
def image_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("image") / "two_people.png"
    image = Image.new("RGB", (2000, 1000), (200, 180, 160))
    image.paste((40, 60, 200), (300, 200, 900, 950))
    image.paste((200, 60, 40), (1000, 150, 1600, 950))
    image.save(path)
    return path


@functools.lru_cache(maxsize=4)
def _data_url(image_path: Path) -> str:
    return encode_image(image_path).data_url


def _request(image_path: Path, samples: int) -> SamplingRequest:
    return SamplingRequest(
        prompt=build_prompt(2),
        image_data_url=_data_url(image_path),
        samples=samples,
        temperature=0.7,
        max_tokens=500,
    )


def _settings(server: FakeOpenAIServer, **overrides) -> ClientSettings:
    values = dict(model="test-vision-model", base_url=server.base_url, timeout_s=5.0, retries=3, backoff_base_s=0.01)
    values.update(overrides)
    return ClientSettings(**values)


def _sent_image(body: dict) -> Image.Image:
    content = body["messages"][1]["content"]
    image_part = next(part for part in content if part["type"] == "image_url")
    assert image_part["image_url"]["detail"] == "high"
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    image.load()
    return image


def _assert_key_only_in_authorization(server: FakeOpenAIServer) -> None:
    for request in server.received:
        assert request.headers["authorization"] == f"Bearer {SECRET}"
        others = [value for name, value in request.headers.items() if name != "authorization"]
        assert not any(SECRET in value for value in others)
        assert SECRET.encode() not in request.raw_body and SECRET not in request.path


def test_n_honoured_one_request(image_path):
    progress = []
    with FakeOpenAIServer(texts=TWO_PEOPLE_TEXTS) as server:
        result = sample_responses(
            _request(image_path, 6), _settings(server), SECRET, on_sample=lambda d, t: progress.append((d, t))
        )
    assert len(server.received) == 1 and result.requests == 1
    body = server.received[0].body
    assert body["model"] == "test-vision-model"
    assert body["n"] == 6 and body["temperature"] == 0.7 and body["max_tokens"] == 500
    assert body["messages"][0]["role"] == "system" and "Person 1 part" in body["messages"][0]["content"]
    assert _sent_image(body).size == (1024, 512)
    assert result.texts == tuple(TWO_PEOPLE_TEXTS[:6])
    assert result.usage.prompt_tokens == 100 and result.usage.completion_tokens == 120
    assert progress == [(k, 6) for k in range(1, 7)]
    _assert_key_only_in_authorization(server)


def test_n_ignored_rest_as_single_requests(image_path):
    with FakeOpenAIServer(texts=TWO_PEOPLE_TEXTS, default=("choices", 1)) as server:
        result = sample_responses(_request(image_path, 5), _settings(server), SECRET)
    ns = sorted(request.body["n"] for request in server.received)
    assert ns == [1, 1, 1, 1, 5]
    assert len(result.texts) == 5 and len(set(result.texts)) == 5
    assert result.usage.prompt_tokens == 500 and result.usage.total_tokens == 600


def test_n_refused_with_400_falls_back_to_single_requests(image_path):
    with FakeOpenAIServer(script=[("status", 400, {})]) as server:
        result = sample_responses(_request(image_path, 3), _settings(server), SECRET)
    assert [request.body["n"] for request in server.received][0] == 3
    assert sorted(request.body["n"] for request in server.received[1:]) == [1, 1, 1]
    assert len(result.texts) == 3
    with FakeOpenAIServer(default=("status", 400, {})) as server:
        with pytest.raises(LmmError, match="HTTP 400"):
            sample_responses(_request(image_path, 3), _settings(server), SECRET)
    assert [request.body["n"] for request in server.received] == [3, 1]


def test_429_with_retry_after_then_success(image_path):
    script = [("status", 429, {"Retry-After": "1"})]
    with FakeOpenAIServer(script=script) as server:
        result = sample_responses(_request(image_path, 3), _settings(server), SECRET)
    assert len(server.received) == 2 and len(result.texts) == 3
    # backoff base is 0.01 s: only the server's Retry-After explains a second's wait
    assert server.received[1].time - server.received[0].time >= 0.9


@pytest.mark.parametrize(
    "failure",
    [("status", 500, {}), ("status", 503, {}), ("malformed",), ("wrong_shape",), ("drop",), ("sleep", 3.0)],
    ids=["500", "503", "malformed_json", "json_not_a_completion", "dropped_connection", "timeout"],
)
def test_transient_failure_then_success(image_path, failure):
    with FakeOpenAIServer(script=[failure]) as server:
        # a 1 s timeout: long enough for a normal answer on a busy machine, short of the sleep
        result = sample_responses(_request(image_path, 2), _settings(server, timeout_s=1.0), SECRET)
    assert len(result.texts) == 2
    assert len(server.received) == 2


@pytest.mark.parametrize(
    "failure, words",
    [
        (("malformed",), "not valid JSON"),
        (("wrong_shape",), "not a chat completion"),
        (("sleep", 1.0), "timed out"),
        (("status", 500, {}), "HTTP 500"),
        (("drop",), "dropped"),
    ],
    ids=["malformed_json", "json_not_a_completion", "timeout", "500", "dropped_connection"],
)
def test_all_retries_failing_gives_a_clear_error(image_path, failure, words):
    with FakeOpenAIServer(default=failure) as server:
        with pytest.raises(LmmError) as raised:
            sample_responses(_request(image_path, 2), _settings(server, timeout_s=0.3, retries=2), SECRET)
    assert len(server.received) == 3
    assert words in str(raised.value) and "3 tries" in str(raised.value)
    assert SECRET not in str(raised.value)


def test_client_errors_are_not_retried(image_path):
    with FakeOpenAIServer(default=("status", 401, {})) as server:
        with pytest.raises(LmmError, match="API key"):
            sample_responses(_request(image_path, 2), _settings(server), SECRET)
    assert len(server.received) == 1


def test_quota_exhausted_is_not_retried(image_path):
    with FakeOpenAIServer(default=("status", 429, {"Retry-After": "30"}, "insufficient_quota")) as server:
        with pytest.raises(LmmError, match="quota"):
            sample_responses(_request(image_path, 2), _settings(server), SECRET)
    assert len(server.received) == 1


# ---------------------------------------------------------------------------------------------
# The CLI in a subprocess


def _run_cli(
    args: list[str], tmp_path: Path, key: str | None = SECRET, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    env.update(extra_env or {})
    env["HOME"] = str(tmp_path / "home")
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    if key is not None:
        env["OPENAI_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "engine", "contacts", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def run_main(monkeypatch, capsys, tmp_path):
    """The same command through ``engine.cli.main`` in this process (no interpreter start-up):
    used where a subprocess adds nothing but time."""

    def run(args: list[str], key: str | None = SECRET) -> subprocess.CompletedProcess:
        from engine.cli import main

        for name in [name for name in os.environ if name.startswith("OPENAI")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        if key is not None:
            monkeypatch.setenv("OPENAI_API_KEY", key)
        capsys.readouterr()
        code = main(["contacts", *args])
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return run


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _all_files_text(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_cli_writes_contacts_then_hits_the_cache(image_path, tmp_path, run_main):
    cache = tmp_path / "cache"
    out = tmp_path / "contacts.json"
    texts = [case.text for case in CASES if case.name in ("clean_hug", "plural_hands", "draft_then_final_table")]
    with FakeOpenAIServer(texts=texts) as server:
        args = [str(image_path), "--people", "2", "--samples", "4", "--model", "test-vision-model",
                "--base-url", server.base_url, "--cache-dir", str(cache), "--box", "300,200,900,950",
                "--box", "1000,150,1600,950", "--backoff", "0.01", "-o", str(out)]
        # the openai package's debug log on: the key must not show up in it either
        first = _run_cli(args, tmp_path, extra_env={"OPENAI_LOG": "debug"})
        assert first.returncode == 0, first.stdout + first.stderr
        assert len(server.received) == 1
        out.unlink()
        second = run_main(args)
        assert second.returncode == 0, second.stdout + second.stderr
        assert len(server.received) == 1  # the cache answered: zero new requests
    assert "Sending HTTP Request" in first.stderr  # the debug log ran
    lines = _lines(first.stdout)
    assert [line["done"] for line in lines if line["event"] == "sample"] == [1, 2, 3, 4]
    final = lines[-1]
    assert final["event"] == "contacts" and final["samples"] == 4 and final["cached"] is False
    assert final["usage"]["prompt_tokens"] == 100
    assert _lines(second.stdout)[-1]["cached"] is True
    data = json.loads(out.read_text())
    jsonschema.validate(data, SCHEMA)
    assert data["raw_responses"] == [texts[0], texts[1], texts[2], texts[0]]
    assert data["boxes"] == [[300, 200, 900, 950], [1000, 150, 1600, 950]]
    keys = {row["key"]: row["count"] for row in data["summary"]}
    assert keys["back|hand"] == 2 and keys["both_hand|waist"] == 1
    # the boxes crop to their union (1300 x 800 px) grown by 10 % of it on each side, clipped to
    # the image: x 170..1730, y 70..1000 = 1560 x 930 px; then the long side is 1024 px
    sent = _sent_image(server.received[0].body)
    assert sent.size == (1024, round(930 * 1024 / 1560))
    body_prompt = server.received[0].body["messages"][1]["content"][0]["text"]
    assert "red rectangle" in body_prompt
    # the key: only in the Authorization header, nowhere on disk or in the output
    _assert_key_only_in_authorization(server)
    for text in (first.stdout, first.stderr, second.stdout, second.stderr, _all_files_text(tmp_path)):
        assert SECRET not in text


def test_cli_corrupt_cache_entry_is_rewritten_and_no_cache_bypasses(image_path, tmp_path, run_main):
    cache = tmp_path / "cache"
    out = tmp_path / "contacts.json"
    with FakeOpenAIServer() as server:
        args = [str(image_path), "--people", "1", "--samples", "2", "--base-url", server.base_url,
                "--cache-dir", str(cache), "-o", str(out)]
        assert run_main(args).returncode == 0
        [entry] = list(cache.glob("*.json"))
        entry.write_text("{ this is not json")
        again = run_main(args)
        assert again.returncode == 0, again.stdout
        assert len(server.received) == 2
        assert json.loads(entry.read_text())["texts"]
        assert run_main(args + ["--no-cache"]).returncode == 0
        assert len(server.received) == 3
    assert json.loads(out.read_text())["summary"][0]["key"] == "hand|head"


def test_cli_all_retries_failing_exits_with_one_error_line_and_no_file(image_path, tmp_path):
    out = tmp_path / "contacts.json"
    with FakeOpenAIServer(default=("status", 500, {})) as server:
        result = _run_cli(
            [str(image_path), "--people", "2", "--samples", "3", "--base-url", server.base_url,
             "--retries", "2", "--backoff", "0.01", "--no-cache", "-o", str(out)],
            tmp_path,
        )
    assert result.returncode == 2
    lines = _lines(result.stdout)
    assert len(lines) == 1 and lines[0]["event"] == "error"
    assert "failed after 3 tries" in lines[0]["message"] and "HTTP 500" in lines[0]["message"]
    assert len(server.received) == 3
    assert not out.exists() and not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".contacts*"))
    assert SECRET not in result.stdout + result.stderr


def test_cli_missing_key_for_openai_and_bad_image(tmp_path, image_path, run_main):
    out = tmp_path / "contacts.json"
    result = run_main([str(image_path), "--people", "2", "-o", str(out)], key=None)
    assert result.returncode == 2 and "OPENAI_API_KEY" in _lines(result.stdout)[0]["message"]
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    result = run_main([str(bad), "--people", "2", "--base-url", "http://127.0.0.1:9/v1", "-o", str(out)])
    assert result.returncode == 2 and "not an image" in _lines(result.stdout)[0]["message"]
    assert not out.exists()


HAND_ON_BACK = "Person 1 rests a hand on Person 2's back.\n\n| Person 1 part | Person 2 part |\n|---|---|\n| hand | back |\n"
NOTHING = "I cannot tell.\n\n| Person 1 part | Person 2 part |\n|---|---|\n"


def test_cli_backs_off_only_when_half_of_the_answers_are_empty(image_path, tmp_path):
    out = tmp_path / "contacts.json"
    args = [str(image_path), "--people", "2", "--samples", "20", "--no-cache", "-o", str(out)]
    # 2 empty answers of 20 keep the contacts (the old default backed off at 2).
    with FakeOpenAIServer(texts=[HAND_ON_BACK] * 18 + [NOTHING] * 2) as server:
        result = _run_cli(args + ["--base-url", server.base_url], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    final = _lines(result.stdout)[-1]
    assert final["empty"] == 2 and final["empty_backoff"] == 10 and final["backed_off"] is False
    assert any("2 of 20 answers were empty" in note for note in final["notes"])
    data = json.loads(out.read_text())
    jsonschema.validate(data, SCHEMA)
    assert data["empty_backoff"] == 10 and data["backed_off"] is False
    # The summary keeps Person 1's part on Person 1, as answered.
    [row] = data["summary"]
    assert (row["part_a"], row["person_a"], row["part_b"], row["person_b"], row["count"]) == ("hand", 0, "back", 1, 18)
    assert final["top"][0]["label"] == "P1 hand - P2 back"


def test_cli_empty_backoff_flag_zero_never_backs_off(image_path, tmp_path, run_main):
    out = tmp_path / "contacts.json"
    args = [str(image_path), "--people", "2", "--samples", "20", "--no-cache", "-o", str(out)]
    with FakeOpenAIServer(texts=[HAND_ON_BACK] * 10 + [NOTHING] * 10) as server:
        args += ["--base-url", server.base_url]
        default = run_main(args)
        assert default.returncode == 0, default.stdout
        final = _lines(default.stdout)[-1]
        assert final["backed_off"] is True and "10 of 20 answers were empty" in final["notes"][0]
        assert json.loads(out.read_text())["backed_off"] is True
        never = _run_cli(args + ["--empty-backoff", "0"], tmp_path)
        assert never.returncode == 0, never.stdout + never.stderr
        final = _lines(never.stdout)[-1]
        assert final["backed_off"] is False and final["empty_backoff"] == 0
        assert any("10 of 20 answers were empty" in note for note in final["notes"])
        data = json.loads(out.read_text())
        jsonschema.validate(data, SCHEMA)
        assert data["empty_backoff"] == 0 and data["backed_off"] is False
        eleven = run_main(args + ["--empty-backoff", "11"])
        assert _lines(eleven.stdout)[-1]["backed_off"] is False
        refused = run_main(args + ["--empty-backoff", "-1"])
    assert refused.returncode == 2 and "--empty-backoff" in _lines(refused.stdout)[0]["message"]
