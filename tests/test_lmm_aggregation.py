"""Aggregation of parsed samples into the contact objective, against hand-computed structure."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from engine.contacts.constraints import (
    CellPart,
    ParsedCell,
    ParsedRow,
    ParsedSample,
    artist_term,
    backoff_threshold,
    constraint_key,
    objective_from_samples,
    sample_options,
    summarize,
    with_side_hints,
)
from engine.contacts.file import CONTACTS_SCHEMA_VERSION, ContactsFile, TokenUsage
from engine.contacts.objective import RegionPair
from engine.body.regions import GROUND, REGION_BASES

SCHEMA = json.loads((Path(__file__).parent.parent / "schemas/contacts.schema.json").read_text())


def part(text: str) -> CellPart:
    """'hand' / 'left hand' / 'hands' / 'ground' -> CellPart (test shorthand)."""
    words = text.split()
    side = words[0] if words[0] in ("left", "right") else None
    base = words[-1]
    both = base.endswith("s") and base[:-1] in REGION_BASES
    return CellPart(base[:-1] if both else base, side, both)


def row(first: str, second: str) -> ParsedRow:
    return ParsedRow(
        ParsedCell(tuple(part(p.strip()) for p in first.split(","))),
        ParsedCell(tuple(part(p.strip()) for p in second.split(","))),
    )


def sample(*rows: tuple[str, str]) -> ParsedSample:
    parsed = tuple(row(a, b) for a, b in rows)
    return ParsedSample(rows=parsed, empty=not parsed)


def P(pa, ra, pb, rb) -> RegionPair:
    return RegionPair(pa, ra, pb, rb)


def as_sets(options):
    """Options as a set of frozensets of frozensets (order-free comparison)."""
    return {frozenset(frozenset(r) for r in option) for option in options}


def test_two_people_unsided_row_has_both_orders_merged_into_one_row():
    options, warnings = sample_options([row("head", "chest")], 2)
    assert warnings == ()
    # head(P1)-chest(P2) or, with the people swapped, chest(P1)-head(P2): one row, 2 alternatives
    assert options == (((P(0, "chest", 1, "head"), P(0, "head", 1, "chest")),),)


def test_two_people_part_named_twice_uses_both_sides_and_both_orders():
    options, _ = sample_options([row("hand", "back"), row("hand", "stomach")], 2)
    expected = set()
    for first, second in (("left_hand", "right_hand"), ("right_hand", "left_hand")):
        # order 1: P1's hands on P2's back and stomach
        expected.add(frozenset({frozenset({P(0, first, 1, "back")}), frozenset({P(0, second, 1, "stomach")})}))
        # order 2: P2's hands on P1's back and stomach
        expected.add(frozenset({frozenset({P(0, "back", 1, first)}), frozenset({P(0, "stomach", 1, second)})}))
    assert as_sets(options) == expected
    assert len(options) == 4


def test_two_people_plural_on_one_side_means_both_hands_touch():
    options, _ = sample_options([row("hands", "shoulder")], 2)
    # P2's single "shoulder" is one mention: the same side in both rows (2 choices) x 2 orders
    expected = set()
    for side in ("left", "right"):
        shoulder = f"{side}_shoulder"
        expected.add(frozenset({frozenset({P(0, "left_hand", 1, shoulder)}), frozenset({P(0, "right_hand", 1, shoulder)})}))
        expected.add(frozenset({frozenset({P(0, shoulder, 1, "left_hand")}), frozenset({P(0, shoulder, 1, "right_hand")})}))
    assert as_sets(options) == expected


def test_two_people_explicit_side_is_respected_and_fixes_the_other_mention():
    options, _ = sample_options([row("left hand", "back"), row("hand", "head")], 2)
    expected = {
        frozenset({frozenset({P(0, "left_hand", 1, "back")}), frozenset({P(0, "right_hand", 1, "head")})}),
        frozenset({frozenset({P(0, "back", 1, "left_hand")}), frozenset({P(0, "head", 1, "right_hand")})}),
    }
    assert as_sets(options) == expected


def test_two_people_alternatives_become_one_row_with_several_pairs():
    options, _ = sample_options([row("hand", "back, waist (back)".replace("waist (back)", "waist_back"))], 2)
    pairs = set(options[0][0])
    assert len(options) == 1 and len(options[0]) == 1
    assert pairs == {
        P(0, f"{s}_hand", 1, b) for s in ("left", "right") for b in ("back", "waist_back")
    } | {P(0, b, 1, f"{s}_hand") for s in ("left", "right") for b in ("back", "waist_back")}


def test_two_people_sample_weight_is_mean_and_empty_samples_count_in_n():
    samples = [sample(("hand", "back"))] * 3 + [sample()]
    objective = objective_from_samples(samples, 2, lmm_weight=8.0)
    assert not objective.backed_off
    assert len(objective.terms) == 3
    assert all(term.weight == pytest.approx(8.0 / 4) for term in objective.terms)


def test_option_cap_drops_rows_with_a_warning():
    rows = [row("hand", "foot")] + [row("arm", "leg") for _ in range(2)] + [row("shoulder", "foot")] * 4
    options, warnings = sample_options(rows, 2, max_options=64)
    assert len(options) <= 64
    assert warnings and "dropped" in warnings[0]


def test_one_person_threshold_f():
    # "hand | head" named by 10 samples (kept at f=10), "foot | ground" by 9 (dropped)
    samples = [sample(("hand", "head"), ("foot", "ground")) for _ in range(9)]
    samples += [sample(("head", "hand"))]
    samples += [sample(("leg", "leg")) for _ in range(10)]
    objective = objective_from_samples(samples, 1, min_samples=10)
    by_label = {term.label: term for term in objective.terms}
    assert len(objective.terms) == 2
    head = next(t for t in objective.terms if "head" in t.label)
    assert head.weight == 1.0
    assert head.options == (((P(0, "head", 0, "left_hand"), P(0, "head", 0, "right_hand")),),)
    legs = next(t for t in objective.terms if "leg" in t.label)
    # a part named twice on one body: left leg with right leg, never with itself
    assert legs.options == (((P(0, "left_leg", 0, "right_leg"),),),)
    assert not any("foot" in label for label in by_label)
    lower = objective_from_samples(samples, 1, min_samples=9)
    assert len(lower.terms) == 3
    foot = next(t for t in lower.terms if "foot" in t.label)
    assert foot.options == (((P(0, "left_foot", 0, GROUND), P(0, "right_foot", 0, GROUND)),),)


def test_one_person_no_adjacent_segment_and_no_self_pair():
    options, _ = sample_options([row("foot", "leg")], 1)
    assert options == (((P(0, "left_foot", 0, "right_leg"), P(0, "left_leg", 0, "right_foot")),),)
    options, _ = sample_options([row("back", "back")], 1)
    assert options == ()
    objective = objective_from_samples([sample(("back", "back"))] * 10, 1)
    assert objective.terms == () and objective.notes


def test_one_person_plural_makes_two_rows():
    options, _ = sample_options([row("hands", "ground")], 1)
    assert options == (((P(0, "left_hand", 0, GROUND),), (P(0, "right_hand", 0, GROUND),)),)


def test_back_off_at_t_empty_samples():
    full = [sample(("hand", "back"))] * 18
    one_empty = objective_from_samples(full + [sample()], 2, empty_backoff=2)
    assert not one_empty.backed_off and len(one_empty.terms) == 18
    two_empty = objective_from_samples(full + [sample(), sample()], 2, empty_backoff=2)
    assert two_empty.backed_off and two_empty.terms == ()
    assert "2 of 20 answers were empty" in two_empty.notes[0]
    assert objective_from_samples(full + [sample()] * 2, 2, empty_backoff=3).terms


def test_back_off_by_default_only_when_half_of_the_answers_are_empty():
    two_empty = objective_from_samples([sample(("hand", "back"))] * 18 + [sample()] * 2, 2)
    assert not two_empty.backed_off and len(two_empty.terms) == 18
    assert any("2 of 20 answers were empty" in note for note in two_empty.notes)
    nine_empty = objective_from_samples([sample(("hand", "back"))] * 11 + [sample()] * 9, 2)
    assert not nine_empty.backed_off and len(nine_empty.terms) == 11
    ten_empty = objective_from_samples([sample(("hand", "back"))] * 10 + [sample()] * 10, 2)
    assert ten_empty.backed_off and ten_empty.terms == ()
    assert "10 of 20 answers were empty" in ten_empty.notes[0] and "half of 20" in ten_empty.notes[0]
    # One person: the same rule (3 of 5 is half, rounded up).
    assert objective_from_samples([sample(("hand", "head"))] * 3 + [sample()] * 2, 1, min_samples=1).terms
    assert objective_from_samples([sample(("hand", "head"))] * 2 + [sample()] * 3, 1, min_samples=1).backed_off
    assert (backoff_threshold(None, 20), backoff_threshold(None, 5), backoff_threshold(4, 20)) == (10, 3, 4)


def test_back_off_zero_never_backs_off_and_a_negative_count_is_refused():
    never = objective_from_samples([sample(("hand", "back"))] + [sample()] * 19, 2, empty_backoff=0)
    assert not never.backed_off and len(never.terms) == 1
    assert any("19 of 20 answers were empty" in note for note in never.notes)
    with pytest.raises(ValueError, match="empty_backoff"):
        objective_from_samples([sample(("hand", "back"))], 2, empty_backoff=-1)
    assert not objective_from_samples([sample(("hand", "back"))] * 3, 2).notes  # nothing empty, nothing said


def test_disabled_key_drops_row_from_every_sample():
    samples = [sample(("hand", "back"), ("head", "head"))] * 4
    summary = summarize(samples, 2)
    assert [(r.key, r.count) for r in summary] == [("back|hand", 4), ("head|head", 4)]
    objective = objective_from_samples(samples, 2, disabled=frozenset({"head|head"}))
    assert all("head" not in pair.region_a + pair.region_b for pair in objective.pairs())


def test_summary_merges_person_orders_and_counts_each_sample_once():
    samples = [
        sample(("hand", "back"), ("hand", "back")),
        sample(("back", "hand")),
        sample(("foot", "foot")),
    ]
    summary = summarize(samples, 2)
    assert [(r.key, r.count, r.num_samples) for r in summary] == [("back|hand", 2, 3), ("foot|foot", 1, 3)]
    assert summary[0].person_a == 0 and summary[0].person_b == 1
    # Written once each way round: the first seen ("hand | back") is shown.
    assert summary[0].part_a == "hand" and summary[0].regions_a == ("left_hand", "right_hand")
    assert summary[0].regions_b == ("back",)
    one = summarize([sample(("left hand", "back, waist_back"), ("hands", "ground"))], 1)
    regions = {(r.regions_a, r.regions_b) for r in one}
    assert regions == {(("left_hand",), ("waist_back", "back")), (("left_hand", "right_hand"), (GROUND,))}
    assert constraint_key(row("hand", "back")) == constraint_key(row("back", "hand"))


def test_summary_keeps_person_1s_part_on_person_1_as_answered():
    [hand_on_back] = summarize([sample(("hand", "back"))] * 3, 2)
    assert (hand_on_back.part_a, hand_on_back.person_a, hand_on_back.part_b, hand_on_back.person_b) == ("hand", 0, "back", 1)
    assert hand_on_back.label == "P1 hand - P2 back" and hand_on_back.key == "back|hand"
    assert hand_on_back.regions_a == ("left_hand", "right_hand") and hand_on_back.regions_b == ("back",)
    # Sides as the answer gave them, on the person it gave them to.
    [sided] = summarize([sample(("right hand", "left shoulder"))], 2)
    assert sided.label == "P1 right hand - P2 left shoulder"
    assert sided.regions_a == ("right_hand",) and sided.regions_b == ("left_shoulder",)
    # Written both ways round: the orientation most answers used, whatever came first.
    [most] = summarize([sample(("hand", "back")), sample(("back", "hand")), sample(("back", "hand"))], 2)
    assert most.label == "P1 back - P2 hand" and most.count == 3
    # One person: the order written, too.
    [own] = summarize([sample(("hand", "head"))] * 2, 1)
    assert own.label == "hand - head" and own.regions_b == ("head",)


def test_artist_term_unsided_means_min_over_sides():
    term = artist_term(0, "hand", 1, "left_shoulder", 5.0)
    assert term.weight == 5.0 and term.source == "artist"
    assert term.options == (((P(0, "left_hand", 1, "left_shoulder"), P(0, "right_hand", 1, "left_shoulder")),),)
    ground = artist_term(1, GROUND, 0, "foot", 1.0)
    assert set(ground.options[0][0]) == {P(0, "left_foot", 0, GROUND), P(0, "right_foot", 0, GROUND)}
    with pytest.raises(ValueError):
        artist_term(0, "back", 0, "back", 1.0)
    with pytest.raises(ValueError):
        artist_term(0, "tail", 1, "back", 1.0)


def test_parsed_sample_round_trip_and_contacts_file_schema(tmp_path):
    parsed = sample(("hands", "left shoulder"), ("back", "waist_front"))
    assert ParsedSample.from_dict(parsed.to_dict()) == parsed
    contacts = ContactsFile(
        image_sha256="ab" * 32,
        num_people=2,
        model="gpt-4o",
        base_url="http://127.0.0.1:1/v1",
        prompt_id="two_people_v1",
        samples_requested=1,
        temperature=0.7,
        max_tokens=500,
        boxes=((0, 0, 10, 10),),
        raw_responses=("| a | b |",),
        samples=(parsed,),
        summary=summarize([parsed], 2),
        usage=TokenUsage(10, 5, 15),
        created="2026-01-01T00:00:00Z",
        empty_backoff=1,
        backed_off=False,
    )
    jsonschema.validate(contacts.to_dict(), SCHEMA)
    path = tmp_path / "contacts.json"
    contacts.write(path)
    assert ContactsFile.read(path) == contacts
    assert [p.name for p in tmp_path.iterdir()] == ["contacts.json"]
    bad = contacts.to_dict() | {"api_key": "x"}
    with pytest.raises(ValueError, match="unknown keys"):
        ContactsFile.from_dict(bad)
    for version in (1, CONTACTS_SCHEMA_VERSION + 1):
        with pytest.raises(ValueError, match="schema version"):
            ContactsFile.from_dict(contacts.to_dict() | {"schema_version": version})
    with pytest.raises(ValueError, match="missing keys"):
        ContactsFile.from_dict({k: v for k, v in contacts.to_dict().items() if k != "empty_backoff"})
    # The summary in the file keeps Person 1's part first: "| hands | left shoulder |".
    written = json.loads(path.read_text())
    assert [(r["part_a"], r["person_a"], r["part_b"], r["person_b"]) for r in written["summary"]] == [
        ("back", 0, "waist (front)", 1),
        ("both hands", 0, "left shoulder", 1),
    ]
    schema_bases = set(SCHEMA["$defs"]["part"]["properties"]["base"]["enum"])
    assert schema_bases == set(REGION_BASES) | {GROUND}


def loss(objective, distance) -> float:
    """The objective's value (engine.contacts.objective's formula) for a table of pair distances."""
    return sum(
        term.weight
        * min(sum(min(distance(pair) for pair in row) for row in option) for option in term.options)
        for term in objective.terms
    )


def test_two_people_loss_value_uses_opposite_hands_and_the_best_order():
    # P1's hand on P2's back and P1's hand on P2's stomach, hand-computed distances (m):
    table = {
        P(0, "left_hand", 1, "back"): 0.1,
        P(0, "right_hand", 1, "stomach"): 0.3,
        P(0, "right_hand", 1, "back"): 0.05,
        P(0, "left_hand", 1, "stomach"): 0.5,
    }
    objective = objective_from_samples([sample(("hand", "back"), ("hand", "stomach"))] * 2, 2)
    # Swapped order (P2's hands on P1) is far: 1.0 per row.
    value = loss(objective, lambda pair: table.get(pair, 1.0))
    # Options: left->back + right->stomach = 0.4; right->back + left->stomach = 0.55;
    # one hand on both (0.05 + 0.3 = 0.35) is not allowed: a part named twice uses both sides.
    assert value == pytest.approx(2 * 0.5 * 0.4)


def test_two_people_plural_on_both_cells_pairs_sides_once():
    options, _ = sample_options([row("hands", "hands")], 2)
    # P1's two hands hold P2's two hands: left-left + right-right, or crossed; the person
    # orders give the same pairs, so two options of two rows remain.
    assert as_sets(options) == {
        frozenset({frozenset({P(0, "left_hand", 1, "left_hand")}), frozenset({P(0, "right_hand", 1, "right_hand")})}),
        frozenset({frozenset({P(0, "left_hand", 1, "right_hand")}), frozenset({P(0, "right_hand", 1, "left_hand")})}),
    }


def test_three_mentions_use_both_sides():
    options, _ = sample_options([row("hand", "back"), row("hand", "head"), row("hand", "neck")], 2)
    # 2**3 assignments minus all-left and all-right = 6, times 2 orders
    assert len(options) == 12
    for option in options:
        hands = {pair.region_a if "hand" in pair.region_a else pair.region_b for r in option for pair in r}
        assert hands == {"left_hand", "right_hand"}


def test_one_person_loss_value_is_min_over_variants_per_kept_row():
    samples = [sample(("hand", "head"))] * 12 + [sample()] * 1 + [sample(("foot", "foot"))] * 7
    objective = objective_from_samples(samples, 1, min_samples=10, lmm_weight=100.0)
    table = {P(0, "head", 0, "left_hand"): 0.2, P(0, "head", 0, "right_hand"): 0.08}
    # one kept row (hand-head, 12 of 20), weight 100, the closer hand: 100 * 0.08
    assert loss(objective, lambda pair: table.get(pair, 9.0)) == pytest.approx(8.0)


def test_one_person_plural_on_both_cells_pairs_each_side_with_its_own():
    # "hands | legs" of one person: left hand on left leg and right on right, never crossed
    # (with crossing allowed the optimizer took whichever pairing was nearer at the start).
    options, _ = sample_options([row("hands", "legs")], 1)
    assert options == (((P(0, "left_hand", 0, "left_leg"),), (P(0, "right_hand", 0, "right_leg"),)),)
    # The same part twice has only the crossed pairing: a hand never pairs with itself.
    options, _ = sample_options([row("hands", "hands")], 1)
    assert as_sets(options) == {frozenset({frozenset({P(0, "left_hand", 0, "right_hand")})})}


def test_sides_that_answers_agree_on_are_applied_to_the_unsided_rows():
    # Two answers wrote "left hand | left shoulder (back)", none other sides: the unsided
    # "hand | shoulder (back)" rows take those sides; contradicting sides leave them unsided.
    agreed = [sample(("left hand", "left shoulder_back"))] * 2 + [sample(("hand", "shoulder_back"))] * 10
    hinted, notes = with_side_hints(agreed)
    assert all(row.first.alternatives[0].side == "left" and row.second.alternatives[0].side == "left" for s in hinted for row in s.rows)
    assert notes and "left hand - left shoulder (back)" in notes[0]
    objective = objective_from_samples(agreed, 2)
    assert {pair.region_a for pair in objective.pairs()} <= {"left_hand", "left_shoulder_back"}
    split = agreed + [sample(("right hand", "left shoulder_back"))]
    assert with_side_hints(split) == (tuple(split), ())
    lone = [sample(("left hand", "left shoulder_back"))] + [sample(("hand", "shoulder_back"))] * 10
    assert with_side_hints(lone)[1] == ()  # one answer is not enough


def test_agreed_constraints_are_those_f_answers_name_whatever_the_person_order():
    # 7 answers "hand | back", 4 the same row the other way round, 6 "hand | neck", 3 empty.
    samples = [sample(("hand", "back"), ("arm", "arm"))] * 7 + [sample(("back", "hand"))] * 4
    samples += [sample(("hand", "neck"))] * 6 + [sample()] * 3
    objective = objective_from_samples(samples, 2, min_samples=10)
    assert len(objective.terms) == 17  # the loss is still one term per answer with rows
    assert len(objective.agreed) == 1
    agreed = objective.agreed[0]
    assert "(11/20)" in agreed.label and "back" in agreed.label
    pairs = set(agreed.pairs())
    # Either person's either hand on the other's back: the order and the side stay open.
    assert pairs == {P(0, "left_hand", 1, "back"), P(0, "right_hand", 1, "back"), P(0, "back", 1, "left_hand"), P(0, "back", 1, "right_hand")}
    assert objective.must_close() == objective.agreed
    assert objective_from_samples(samples, 2, min_samples=12).agreed == ()
    # One person: the kept constraints are the agreed ones.
    alone = objective_from_samples([sample(("hand", "head"))] * 10 + [sample(("foot", "ground"))] * 5, 1, min_samples=10)
    assert alone.agreed == alone.terms and len(alone.terms) == 1
