"""The parser against realistic responses, and a property test over random and mutated ones."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.contacts.constraints import MAX_OPTIONS_PER_TERM, ParsedSample, sample_options
from engine.lmm.parser import parse_response
from engine.body.regions import GROUND, REGION_BASES
from tests.data.lmm_responses import CASES


def test_corpus_is_large_and_varied():
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)
    assert {case.num_people for case in CASES} == {1, 2}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_response_parses_to_expected_constraints(case):
    parsed = parse_response(case.text, case.num_people)
    got = tuple((row.first.token, row.second.token) for row in parsed.rows)
    assert got == case.expected
    assert parsed.empty == (not case.expected)
    if case.dropped is not None:
        assert len(parsed.dropped) == case.dropped, parsed.dropped
    assert all(row.reason for row in parsed.dropped)
    assert ParsedSample.from_dict(parsed.to_dict()) == parsed


def test_no_table_is_reported_as_a_dropped_reason():
    parsed = parse_response("Nothing touches.", 2)
    assert parsed.empty and "no Markdown table" in parsed.dropped[0].reason


def test_parser_never_executes_cells(tmp_path, monkeypatch):
    marker = tmp_path / "executed"
    code = f"__import__('pathlib').Path({str(marker)!r}).write_text('x')"
    text = f"| Part | Part |\n|---|---|\n| {code} | hand |\n| `{code}` | head |\n"
    parsed = parse_response(text, 1)
    assert parsed.rows == () and len(parsed.dropped) == 2
    assert not marker.exists()


def _check_sample(sample: ParsedSample, num_people: int) -> None:
    for row in sample.rows:
        for cell in (row.first, row.second):
            assert cell.alternatives
            for part in cell.alternatives:
                assert part.base in REGION_BASES or (part.base == GROUND and num_people == 1)
                assert part.side in (None, "left", "right")
    assert sample.empty == (not sample.rows)
    assert ParsedSample.from_dict(sample.to_dict()) == sample
    options, _warnings = sample_options(sample.rows, num_people)
    assert len(options) <= MAX_OPTIONS_PER_TERM


_WORDS = st.sampled_from(
    ["hand", "hands", "left", "right", "back", "waist (front)", "floor", "ground", "None", "N/A",
     "|", "||", "---", ":-:", "**", "`", "```", "\n", " ", ",", "/", "or", "and", "both", "person",
     "Part", "Person 1 part", "__import__('os')", "eval(", "(", ")", "'s", "of the", "feet",
     "shoulder blade", "lower back", "💥", "\t", ">", "\\|", "<br>", "…", "-", "x" * 90]
)
_PIECES = st.lists(st.one_of(_WORDS, st.text(max_size=12)), max_size=60).map("".join)


def _mutations(draw_text: str, data) -> str:
    """Cut, duplicate, delete and insert characters of a real response."""
    text = draw_text
    for _ in range(data.draw(st.integers(0, 6))):
        if not text:
            break
        kind = data.draw(st.sampled_from(["cut", "delete", "insert", "duplicate", "swap_pipe"]))
        position = data.draw(st.integers(0, len(text)))
        if kind == "cut":
            text = text[:position]
        elif kind == "delete":
            text = text[:position] + text[position + data.draw(st.integers(1, 20)):]
        elif kind == "insert":
            text = text[:position] + data.draw(_PIECES) + text[position:]
        elif kind == "duplicate":
            text = text + "\n" + text[position:]
        else:
            text = text.replace("|", data.draw(st.sampled_from(["", "||", "¦", "|"])), 3)
    return text


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_parser_never_raises_on_random_and_mutated_responses(data):
    source = data.draw(st.sampled_from(["random", "mutated", "tabled"]))
    if source == "random":
        text = data.draw(st.one_of(st.text(max_size=400), _PIECES))
    elif source == "mutated":
        text = _mutations(data.draw(st.sampled_from(CASES)).text, data)
    else:
        rows = data.draw(st.lists(st.tuples(_PIECES, _PIECES), max_size=8))
        text = "| Part | Part |\n|---|---|\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)
    for num_people in (1, 2):
        _check_sample(parse_response(text, num_people), num_people)
