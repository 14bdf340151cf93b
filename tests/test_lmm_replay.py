"""Replay answers (``python -m engine contacts --replay FILE``): the bundled examples' answers
go through the live path (parser, aggregation, the contacts file) with no key, endpoint or
cache; a bad replay file gives one error line naming the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from engine.cli import main
from engine.lmm.replay import ReplayError, load_replay, write_replay

REPO = Path(__file__).resolve().parent.parent
HANDS = "Step by step: they hold hands.\n\n| Person 1 part | Person 2 part |\n|---|---|\n| hand | hand |\n"


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "picture.png"
    Image.new("RGB", (64, 48), (120, 110, 100)).save(path)
    return path


def _run(capsys, monkeypatch, tmp_path, args):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    capsys.readouterr()
    code = main(["contacts", *args])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return code, lines


def test_replay_takes_the_live_path_without_key_or_cache(image, tmp_path, capsys, monkeypatch):
    replay = tmp_path / "answers.json"
    write_replay(replay, [HANDS] * 3 + ["I cannot tell."], 2, "answers written for a test")
    out = tmp_path / "contacts.json"
    code, lines = _run(capsys, monkeypatch, tmp_path, [str(image), "--people", "2", "--samples", "4",
                                                         "--replay", str(replay), "--cache-dir", str(tmp_path / "cache"), "-o", str(out)])
    assert code == 0, lines
    assert [line["done"] for line in lines if line["event"] == "sample"] == [1, 2, 3, 4]
    summary = lines[-1]
    assert summary["event"] == "contacts" and summary["empty"] == 1 and summary["requests"] == 0 and not summary["cached"]
    data = json.loads(out.read_text())
    assert data["model"] == "replay" and data["base_url"].startswith("replay:") and data["raw_responses"][0] == HANDS
    assert [(row["key"], row["count"]) for row in data["summary"]] == [("hand|hand", 3)]
    assert not (tmp_path / "cache").exists()  # a replay is never cached


def test_the_bundled_examples_are_valid_replay_files():
    files = sorted((REPO / "examples").glob("*/answers.json"))
    assert len(files) >= 4
    for path in files:
        replay = load_replay(path)
        assert len(replay.texts) == 20 and "not recorded" in replay.source


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ('{"format": "x", "version": 1, "source": "s", "num_people": 2, "answers": ["a"]}', "format is 'x'"),
        ('{"format": "prosepose-answers", "version": 2, "source": "s", "num_people": 2, "answers": ["a"]}', "version 2"),
        ('{"format": "prosepose-answers", "version": 1, "source": "", "num_people": 2, "answers": ["a"]}', "'source'"),
        ('{"format": "prosepose-answers", "version": 1, "source": "s", "num_people": 3, "answers": ["a"]}', "num_people"),
        ('{"format": "prosepose-answers", "version": 1, "source": "s", "num_people": 2, "answers": []}', "non-empty list"),
        ('{"format": "prosepose-answers", "version": 1, "source": "s", "num_people": 2, "answers": [1]}', "answer 1 is int"),
        ('{"format": "prosepose-answers", "version": 1, "source": "s", "num_people": 2, "answers": ["a"], "x": 1}', "unknown keys"),
    ],
)
def test_a_bad_replay_file_names_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "answers.json"
    path.write_text(content)
    with pytest.raises(ReplayError) as caught:
        load_replay(path)
    assert str(path) in str(caught.value) and problem in str(caught.value)


@pytest.mark.parametrize("people, samples, problem", [(1, 2, "about 2 people"), (2, 5, "fewer than the 5 samples")])
def test_replay_that_does_not_fit_the_command_is_refused(image, tmp_path, capsys, monkeypatch, people, samples, problem):
    replay = tmp_path / "answers.json"
    write_replay(replay, [HANDS, HANDS], 2, "answers written for a test")
    out = tmp_path / "contacts.json"
    code, lines = _run(capsys, monkeypatch, tmp_path, [str(image), "--people", str(people), "--samples", str(samples),
                                                         "--replay", str(replay), "-o", str(out)])
    assert code == 2 and lines[-1]["event"] == "error" and problem in lines[-1]["message"] and str(replay) in lines[-1]["message"]
    assert not out.exists()
