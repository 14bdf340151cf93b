"""Parsed LMM constraints, their aggregation into a contact objective, and their summary.

Types (all frozen, all with ``to_dict``/``from_dict``; the refine job embeds parsed samples in
exactly this dict form):

* :class:`CellPart`: one alternative of a table cell: a region base from ``engine.body.regions``
  (or ``"ground"``), an explicit side when the model wrote one, and ``both_sides`` for a plural
  ("hands" = both hands).
* :class:`ParsedCell`: the alternatives a cell lists ("back, waist" -> two parts); the row is
  satisfied by the closest one.
* :class:`ParsedRow`: two cells. For two people the first cell is Person 1's part and the second
  Person 2's; for one person both cells are parts of the same body (or the ground).
* :class:`ParsedSample`: the rows of one LMM response, the rows dropped with their reasons, and
  whether the response was empty (no usable row).

Aggregation (:func:`objective_from_samples`) follows DESIGN.md section 4; how the left/right
rules are read precisely is written in :func:`sample_options`. :func:`summarize` lists each
distinct constraint with the number of samples that named it; its rows' ``key`` is what a job
lists in ``disabled`` to drop a constraint from every sample.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Iterable, Literal, Sequence

from engine.contacts.objective import ContactObjective, ContactTerm, Option, RegionPair, Row
from engine.body.regions import (
    GROUND,
    MESH_REGIONS,
    REGION_BASES,
    SIDES,
    Side,
    are_adjacent_same_side,
    composite_members,
    region_name,
    split_region,
)

# A sloppy response must not explode the loss: at most this many options per term.
MAX_OPTIONS_PER_TERM = 256


def _check_keys(kind: str, data: Any, required: Iterable[str]) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{kind} must be a JSON object, got {type(data).__name__}")
    required = tuple(required)
    unknown = sorted(set(data) - set(required))
    if unknown:
        raise ValueError(f"{kind} has unknown keys {unknown}; expected {list(required)}")
    missing = [key for key in required if key not in data]
    if missing:
        raise ValueError(f"{kind} is missing keys {missing}")


@dataclass(frozen=True, order=True)
class CellPart:
    """One part a cell names: ``base`` is a key of ``engine.body.regions.REGION_BASES`` or
    ``"ground"``; ``side`` is set only when the model wrote it ("left hand"); ``both_sides``
    marks a plural of a sided base ("hands")."""

    base: str
    side: Side | None = None
    both_sides: bool = False

    def __post_init__(self) -> None:
        if self.base != GROUND and self.base not in REGION_BASES:
            raise ValueError(f"unknown region base {self.base!r}")
        sided = self.base != GROUND and REGION_BASES[self.base].sided
        if self.side is not None and self.side not in SIDES:
            raise ValueError(f"side must be 'left', 'right' or null, not {self.side!r}")
        if not sided and (self.side is not None or self.both_sides):
            raise ValueError(f"region base {self.base!r} has no sides")
        if self.side is not None and self.both_sides:
            raise ValueError(f"part {self.base!r} cannot have one side and both sides at once")

    @property
    def sided(self) -> bool:
        return self.base != GROUND and REGION_BASES[self.base].sided

    @property
    def token(self) -> str:
        """Stable short name: ``hand``, ``left_hand``, ``both_hand``, ``back``, ``ground``."""
        if self.both_sides:
            return f"both_{self.base}"
        if self.side is not None:
            return f"{self.side}_{self.base}"
        return self.base

    @property
    def text(self) -> str:
        """Readable name for lists: "hand", "left hand", "both hands", "waist (front)"."""
        words = self.base.replace("_front", " (front)").replace("_back", " (back)")
        if self.both_sides:
            noun, _, qualifier = words.partition(" ")
            plural = "feet" if noun == "foot" else f"{noun}s"
            return f"both {plural} {qualifier}".rstrip()
        if self.side is not None:
            return f"{self.side} {words}"
        return words

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "side": self.side, "both_sides": self.both_sides}

    @classmethod
    def from_dict(cls, data: Any) -> "CellPart":
        _check_keys("cell part", data, ("base", "side", "both_sides"))
        return cls(base=data["base"], side=data["side"], both_sides=bool(data["both_sides"]))


@dataclass(frozen=True)
class ParsedCell:
    """A cell's alternatives (distinct, in the order written) and its text as written."""

    alternatives: tuple[CellPart, ...]
    text: str = ""

    def __post_init__(self) -> None:
        if not self.alternatives:
            raise ValueError("a parsed cell needs at least one part")
        if len(set(self.alternatives)) != len(self.alternatives):
            raise ValueError("a parsed cell lists the same part twice")

    @property
    def token(self) -> str:
        """Order-free key of the cell: its alternatives' tokens sorted, joined by ``+``."""
        return "+".join(sorted(part.token for part in self.alternatives))

    @property
    def label(self) -> str:
        return " or ".join(part.text for part in self.alternatives)

    @property
    def regions(self) -> tuple[str, ...]:
        """Every concrete region (or ``"ground"``) the cell may stand for, in vocabulary
        order: what the add-on colours on the mesh."""
        names = set()
        for part in self.alternatives:
            if part.base == GROUND:
                names.add(GROUND)
            elif not part.sided:
                names.add(part.base)
            elif part.side is not None:
                names.add(region_name(part.base, part.side))
            else:
                names.update(region_name(part.base, side) for side in SIDES)
        return tuple(r for r in MESH_REGIONS + (GROUND,) if r in names)

    def to_dict(self) -> dict[str, Any]:
        return {"alternatives": [part.to_dict() for part in self.alternatives], "text": self.text}

    @classmethod
    def from_dict(cls, data: Any) -> "ParsedCell":
        _check_keys("parsed cell", data, ("alternatives", "text"))
        return cls(
            alternatives=tuple(CellPart.from_dict(part) for part in data["alternatives"]),
            text=str(data["text"]),
        )


@dataclass(frozen=True)
class ParsedRow:
    """One touching pair: ``first`` is Person 1's part (two people) or one part (one person)."""

    first: ParsedCell
    second: ParsedCell
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"first": self.first.to_dict(), "second": self.second.to_dict(), "text": self.text}

    @classmethod
    def from_dict(cls, data: Any) -> "ParsedRow":
        _check_keys("parsed row", data, ("first", "second", "text"))
        return cls(
            first=ParsedCell.from_dict(data["first"]),
            second=ParsedCell.from_dict(data["second"]),
            text=str(data["text"]),
        )


@dataclass(frozen=True)
class DroppedRow:
    """A table row (or the whole response, with empty ``text``) the parser could not use."""

    text: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Any) -> "DroppedRow":
        _check_keys("dropped row", data, ("text", "reason"))
        return cls(text=str(data["text"]), reason=str(data["reason"]))


@dataclass(frozen=True)
class ParsedSample:
    """The constraint set of one LMM response. ``empty`` is True when the response gave no
    usable row (an empty table, no table, or only unusable rows): back-off counts these."""

    rows: tuple[ParsedRow, ...]
    dropped: tuple[DroppedRow, ...] = ()
    empty: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [row.to_dict() for row in self.rows],
            "dropped": [row.to_dict() for row in self.dropped],
            "empty": self.empty,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "ParsedSample":
        _check_keys("parsed sample", data, ("rows", "dropped", "empty"))
        return cls(
            rows=tuple(ParsedRow.from_dict(row) for row in data["rows"]),
            dropped=tuple(DroppedRow.from_dict(row) for row in data["dropped"]),
            empty=bool(data["empty"]),
        )


# --------------------------------------------------------------------------------------------
# Keys and the summary


def constraint_key(row: ParsedRow) -> str:
    """Stable, order-free key of a row's constraint, e.g. ``"back|hand"`` or
    ``"back+waist|both_hand"``. Swapping the two cells gives the same key: for two people the
    model may choose who is Person 1, for one person the pair is unordered."""
    return "|".join(sorted((row.first.token, row.second.token)))


@dataclass(frozen=True)
class SummaryRow:
    """One distinct constraint and how many samples named it (each sample counts once).

    ``part_a`` / ``part_b`` are readable cell labels ("hand", "left hand", "back or waist
    (back)"), of people ``person_a`` / ``person_b`` (0-based; both 0 for one person), in the
    order the answers wrote them: for two people ``part_a`` is Person 1's part as answered
    (the answer ``| hand | back |`` is "P1 hand - P2 back"). ``key`` is the
    stable id to put in a job's ``disabled`` list. ``regions_a`` / ``regions_b``: the concrete
    regions each side may stand for (for display on the mesh)."""

    key: str
    part_a: str
    person_a: int
    part_b: str
    person_b: int
    count: int
    num_samples: int
    regions_a: tuple[str, ...] = ()
    regions_b: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        if self.person_a == self.person_b:
            return f"{self.part_a} - {self.part_b}"
        return f"P{self.person_a + 1} {self.part_a} - P{self.person_b + 1} {self.part_b}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "part_a": self.part_a,
            "person_a": self.person_a,
            "part_b": self.part_b,
            "person_b": self.person_b,
            "count": self.count,
            "num_samples": self.num_samples,
            "regions_a": list(self.regions_a),
            "regions_b": list(self.regions_b),
        }

    @classmethod
    def from_dict(cls, data: Any) -> "SummaryRow":
        fields = (
            "key", "part_a", "person_a", "part_b", "person_b", "count", "num_samples",
            "regions_a", "regions_b",
        )
        _check_keys("summary row", data, fields)
        return cls(
            key=str(data["key"]),
            part_a=str(data["part_a"]),
            person_a=int(data["person_a"]),
            part_b=str(data["part_b"]),
            person_b=int(data["person_b"]),
            count=int(data["count"]),
            num_samples=int(data["num_samples"]),
            regions_a=tuple(str(r) for r in data["regions_a"]),
            regions_b=tuple(str(r) for r in data["regions_b"]),
        )


def _check_num_people(num_people: int) -> None:
    if num_people not in (1, 2):
        raise ValueError(f"num_people must be 1 or 2, not {num_people!r}")


def summarize(samples: Sequence[ParsedSample], num_people: int) -> tuple[SummaryRow, ...]:
    """Each distinct constraint (by :func:`constraint_key`) with the number of samples that
    named it, most frequent first, ties by key.

    The key is order-free (the objective tries both person orders), but the row keeps the
    cells as the answers wrote them: part A is the first cell (Person 1's part for two
    people), with its sides. When the answers wrote the same constraint both ways round
    ("hand | back" and "back | hand"), the orientation most samples used is shown; a tie
    goes to the one seen first. The cells shown are those of the first row written in that
    orientation."""
    _check_num_people(num_people)
    counts: dict[str, int] = {}
    # key -> orientation (first token, second token) -> [samples using it, first row so written]
    written: dict[str, dict[tuple[str, str], list]] = {}
    for sample in samples:
        seen: set[str] = set()
        for row in sample.rows:
            key = constraint_key(row)
            if key in seen:
                continue
            seen.add(key)
            counts[key] = counts.get(key, 0) + 1
            orientation = (row.first.token, row.second.token)
            entry = written.setdefault(key, {}).setdefault(orientation, [0, row])
            entry[0] += 1
    person_b = 1 if num_people == 2 else 0
    rows = []
    for key, count in counts.items():
        # max() keeps the first of equal counts: dicts iterate in insertion (first-seen) order.
        _, shown = max(written[key].values(), key=lambda entry: entry[0])
        rows.append(
            SummaryRow(
                key=key,
                part_a=shown.first.label,
                person_a=0,
                part_b=shown.second.label,
                person_b=person_b,
                count=count,
                num_samples=len(samples),
                regions_a=shown.first.regions,
                regions_b=shown.second.regions,
            )
        )
    rows.sort(key=lambda row: (-row.count, row.key))
    return tuple(rows)


# --------------------------------------------------------------------------------------------
# From rows to options


@dataclass(frozen=True)
class _Slot:
    """A free side: one un-sided mention of a sided base, decided by the enumeration."""

    index: int


# How an alternative's side is settled in one expanded row: a fixed side, no side (unsided
# base or ground), or a free slot.
_SideSpec = Side | None | _Slot


@dataclass
class _Expansion:
    """Rows with free slots, and the groups of mentions whose sides are tied together."""

    # Each row: the alternatives of the two cells, as (base, side spec).
    rows: list[tuple[list[tuple[str, _SideSpec]], list[tuple[str, _SideSpec]]]]
    # group key -> (free slots, fixed sides of the other mentions)
    groups: dict[tuple, tuple[list[_Slot], list[Side]]]
    num_slots: int = 0


def _group_assignments(slots: list[_Slot], fixed: list[Side]) -> list[tuple[Side, ...]]:
    """Side tuples for ``slots``: when the group has two or more mentions, every side must be
    used at least once (a part named twice is used once on each side)."""
    if not slots:
        return [()]
    mentions = len(slots) + len(fixed)
    choices = []
    for sides in itertools.product(SIDES, repeat=len(slots)):
        if mentions >= 2 and set(sides) | set(fixed) != set(SIDES):
            continue
        choices.append(sides)
    return choices


def _count_assignments(expansion: _Expansion) -> int:
    total = 1
    for slots, fixed in expansion.groups.values():
        total *= len(_group_assignments(slots, fixed))
    return total


def _add_row(expansion: _Expansion, row_index: int, row: ParsedRow, one_person: bool) -> None:
    """Expand one parsed row into one or two rows with slots (see :func:`sample_options`)."""
    cells = (row.first, row.second)
    plural_cols = [col for col, cell in enumerate(cells) if any(p.both_sides for p in cell.alternatives)]
    copies = 2 if plural_cols else 1
    plural_bases_first = {p.base for p in cells[plural_cols[0]].alternatives if p.both_sides} if plural_cols else set()
    # Per (col, base) of an un-sided, non-plural mention: one slot shared by the copies.
    shared: dict[tuple[int, str], _Slot] = {}
    out_rows = [([], []) for _ in range(copies)]

    def new_slot(group: tuple) -> _Slot:
        slot = _Slot(expansion.num_slots)
        expansion.num_slots += 1
        expansion.groups.setdefault(group, ([], []))[0].append(slot)
        return slot

    for col, cell in enumerate(cells):
        person_role = 0 if one_person else col
        for part in cell.alternatives:
            group = ("part", person_role, part.base)
            if not part.sided:
                for copy in range(copies):
                    out_rows[copy][col].append((part.base, None))
            elif part.side is not None:
                expansion.groups.setdefault(group, ([], []))[1].append(part.side)
                for copy in range(copies):
                    out_rows[copy][col].append((part.base, part.side))
            elif part.both_sides and col == plural_cols[0]:
                # The first plural cell spells the copies: copy k uses side k.
                expansion.groups.setdefault(group, ([], []))[1].extend(SIDES)
                for copy in range(copies):
                    out_rows[copy][col].append((part.base, SIDES[copy]))
            elif part.both_sides and one_person and part.base not in plural_bases_first:
                # A second plural cell of one person ("hands | knees", "feet | legs"): each
                # side on its own side. Why not also crossed: a person's hands rest on their
                # knees left on left, and with crossing allowed the optimizer took whichever
                # pairing was nearer at the start, crossing the arms (held-out scenes).
                expansion.groups.setdefault(group, ([], []))[1].extend(SIDES)
                for copy in range(copies):
                    out_rows[copy][col].append((part.base, SIDES[copy]))
            elif part.both_sides:
                # A second plural cell ("hands | knees" between two people, "hands | hands"
                # of one person): its two copies take opposite sides, chosen by the
                # enumeration (left-left + right-right, or crossed).
                private = ("plural", row_index, col, part.base)
                slots = [new_slot(private), new_slot(private)]
                for copy in range(copies):
                    out_rows[copy][col].append((part.base, slots[copy]))
            else:
                slot = shared.get((col, part.base))
                if slot is None:
                    slot = new_slot(group)
                    shared[(col, part.base)] = slot
                for copy in range(copies):
                    out_rows[copy][col].append((part.base, slot))
    expansion.rows.extend(out_rows)


def _region(base: str, spec: _SideSpec, sides: dict[_Slot, Side]) -> str:
    if base == GROUND:
        return GROUND
    if isinstance(spec, _Slot):
        return region_name(base, sides[spec])
    return region_name(base, spec)


def _pair(person_a: int, region_a: str, person_b: int, region_b: str) -> RegionPair | None:
    """Canonical pair (ground second, lower person first, same person: sorted), or None when
    the pair is useless on one body (a region with itself, overlapping composites, a limb
    with its own adjacent segment on the same side) or two grounds."""
    if region_a == GROUND and region_b == GROUND:
        return None
    if region_a == GROUND:
        region_a, region_b = region_b, region_a
        person_a, person_b = person_b, person_a
    if region_b == GROUND:
        return RegionPair(person_a, region_a, person_a, GROUND)
    if person_a == person_b:
        if set(composite_members(region_a)) & set(composite_members(region_b)):
            return None
        if are_adjacent_same_side(region_a, region_b):
            return None
        region_a, region_b = sorted((region_a, region_b))
    elif person_a > person_b:
        person_a, region_a, person_b, region_b = person_b, region_b, person_a, region_a
    return RegionPair(person_a, region_a, person_b, region_b)


def _options(expansion: _Expansion, orders: Sequence[tuple[int, int]]) -> tuple[Option, ...]:
    group_items = list(expansion.groups.values())
    per_group = [_group_assignments(slots, fixed) for slots, fixed in group_items]
    options: dict[Option, None] = {}
    for combo in itertools.product(*per_group):
        sides: dict[_Slot, Side] = {}
        for (slots, _fixed), chosen in zip(group_items, combo):
            sides.update(zip(slots, chosen))
        for person_first, person_second in orders:
            rows: set[Row] = set()
            valid = True
            for first_alts, second_alts in expansion.rows:
                alternatives = set()
                for base_a, spec_a in first_alts:
                    for base_b, spec_b in second_alts:
                        pair = _pair(
                            person_first,
                            _region(base_a, spec_a, sides),
                            person_second,
                            _region(base_b, spec_b, sides),
                        )
                        if pair is not None:
                            alternatives.add(pair)
                if not alternatives:
                    valid = False
                    break
                rows.add(tuple(sorted(alternatives)))
            if valid:
                options[tuple(sorted(rows))] = None
    result = tuple(options)
    if result and all(len(option) == 1 for option in result):
        # min over single-row options == one row holding every alternative
        merged = tuple(sorted({pair for option in result for pair in option[0]}))
        return ((merged,),)
    return result


def sample_options(
    rows: Sequence[ParsedRow],
    num_people: int,
    *,
    max_options: int = MAX_OPTIONS_PER_TERM,
) -> tuple[tuple[Option, ...], tuple[str, ...]]:
    """The options of one unit: a whole sample (two people) or one row (one person).

    Returns the options and warnings (rows dropped to respect ``max_options``).

    How the left/right rules are read:

    * An explicit side ("left hand") is used as written and never enumerated.
    * A plural ("hands", "both feet") means both sides: the row becomes two rows, one per
      side, so both must touch. When the other cell is plural too ("hands | knees"), for one
      person each side goes with its own side (left hand on left knee); between two people,
      and for the same part twice ("hands | hands"), both pairings are options (same-side
      and crossed).
    * Every other mention of a sided base is a free side. Mentions are grouped per person and
      base across the unit's rows (for one person the two cells are the same person, so
      "hand | hand" is a group of two). A cell listing a base among alternatives is a
      mention; one cell names a base at most once. When a group holds two or more mentions
      (free or explicit or plural), its sides must cover both left and right: a part named
      twice is used once on each side; with an explicit "left hand" elsewhere, a plain "hand"
      is the right one; three mentions use both sides in every way possible.
    * Each combination of the groups' sides, times the two person orders for two people,
      is one option; identical rows within an option and identical options are merged; when
      every option has a single row they become one row with all alternatives (the same
      minimum).
    * For one person, pairs useless on one body (a region with itself or an overlapping
      composite, a limb with its own adjacent segment on the same side, ground with ground)
      are left out; an option left with a row without alternatives is dropped.
    * Rows are taken in order; a row that would push the number of options above
      ``max_options`` is dropped with a warning.
    """
    _check_num_people(num_people)
    one_person = num_people == 1
    orders = ((0, 0),) if one_person else ((0, 1), (1, 0))
    expansion = _Expansion(rows=[], groups={})
    warnings: list[str] = []
    for index, row in enumerate(rows):
        trial = _Expansion(
            rows=list(expansion.rows),
            groups={k: (list(v[0]), list(v[1])) for k, v in expansion.groups.items()},
            num_slots=expansion.num_slots,
        )
        _add_row(trial, index, row, one_person)
        if _count_assignments(trial) * len(orders) > max_options:
            warnings.append(
                f"row {row.first.label} | {row.second.label} dropped: it would make more than "
                f"{max_options} left/right options"
            )
            continue
        expansion = trial
    if not expansion.rows:
        return (), tuple(warnings)
    return _options(expansion, orders), tuple(warnings)


def _without_disabled(sample: ParsedSample, disabled: frozenset[str]) -> tuple[ParsedRow, ...]:
    return tuple(row for row in sample.rows if constraint_key(row) not in disabled)


def backoff_threshold(empty_backoff: int | None, num_samples: int) -> int:
    """The back-off count t in effect for ``num_samples`` answers: ``empty_backoff`` as given,
    or, when it is None (the default), half of the answers rounded up (10 of 20, 3 of 5).
    0 means never back off. The paper's code backs off at t = 2 on one dataset only (CHI3D)
    and never elsewhere; half of the answers empty is where an image plainly shows no
    reliable contact."""
    if empty_backoff is None:
        return math.ceil(num_samples / 2)
    if isinstance(empty_backoff, bool) or not isinstance(empty_backoff, int) or empty_backoff < 0:
        raise ValueError(f"empty_backoff must be None or an integer >= 0 (0 = never), not {empty_backoff!r}")
    return empty_backoff


def backoff_text(empty_backoff: int | None, num_samples: int) -> str:
    """How the back-off setting reads in notes: "back-off at 10 empty, half of 20",
    "back-off at 2 empty", "back-off disabled"."""
    threshold = backoff_threshold(empty_backoff, num_samples)
    if threshold == 0:
        return "back-off disabled"
    if empty_backoff is None:
        return f"back-off at {threshold} empty, half of {num_samples}"
    return f"back-off at {threshold} empty"


# Sides an answer wrote are applied to the other answers' unsided rows of the same parts when
# at least this many answers wrote them and none wrote other sides (see with_side_hints).
MIN_SIDE_VOTES = 2


def _single_parts(row: ParsedRow) -> tuple[CellPart, CellPart] | None:
    """The row's two parts when each cell names exactly one and neither is a plural."""
    if len(row.first.alternatives) != 1 or len(row.second.alternatives) != 1:
        return None
    a, b = row.first.alternatives[0], row.second.alternatives[0]
    if a.both_sides or b.both_sides or not (a.sided or b.sided):
        return None
    return a, b


def _parts_key(a: CellPart, b: CellPart) -> tuple[str, str]:
    return tuple(sorted((a.base, b.base)))  # type: ignore[return-value]


def side_hints(samples: Sequence[ParsedSample], min_votes: int = MIN_SIDE_VOTES) -> dict[tuple[str, str], tuple[tuple[str, Side | None], ...]]:
    """For each pair of parts (bases, order-free), the sides the answers wrote for it, when at
    least ``min_votes`` answers wrote sides for every sided part of the pair and all of them
    wrote the same ones: ``{("hand", "shoulder_back"): (("hand", "left"), ("shoulder_back", "left"))}``."""
    votes: dict[tuple[str, str], set[tuple[tuple[str, Side | None], ...]]] = {}
    counts: dict[tuple[str, str], int] = {}
    for sample in samples:
        seen: set[tuple[str, str]] = set()
        for row in sample.rows:
            parts = _single_parts(row)
            if parts is None or any(p.sided and p.side is None for p in parts):
                continue
            key = _parts_key(*parts)
            votes.setdefault(key, set()).add(tuple(sorted(((p.base, p.side) for p in parts), key=str)))
            if key not in seen:
                seen.add(key)
                counts[key] = counts.get(key, 0) + 1
    return {key: next(iter(forms)) for key, forms in votes.items() if len(forms) == 1 and counts[key] >= min_votes}


def with_side_hints(samples: Sequence[ParsedSample], min_votes: int = MIN_SIDE_VOTES) -> tuple[tuple[ParsedSample, ...], tuple[str, ...]]:
    """The samples with :func:`side_hints` applied to every unsided row of the same parts
    (a row whose own sides disagree with the hint is left as it is), and a note per hint used.

    Why: the prompt asks for no sides, and an unsided "hand | shoulder" is met by whichever
    hand is nearest at the start; a regressor that left the touching arm 30-60 cm off makes
    that the other arm, or the other person's, as often as not (held-out scenes). When some
    answers do name the sides, and agree, that is the only evidence of which limb it is."""
    hints = side_hints(samples, min_votes)
    if not hints:
        return tuple(samples), ()
    used: dict[tuple[str, str], int] = {}
    out = []
    for sample in samples:
        rows = []
        for row in sample.rows:
            parts = _single_parts(row)
            key = None if parts is None else _parts_key(*parts)
            if parts is None or key not in hints or not any(p.sided and p.side is None for p in parts):
                rows.append(row)
                continue
            free = list(hints[key])
            for part in parts:  # the sides the row wrote itself take their place in the hint first
                if part.sided and part.side is not None:
                    if (part.base, part.side) not in free:
                        free = None
                        break
                    free.remove((part.base, part.side))
            if free is None:
                rows.append(row)
                continue
            cells = []
            for cell, part in zip((row.first, row.second), parts):
                if part.sided and part.side is None:
                    side = next(s for b, s in free if b == part.base)
                    free.remove((part.base, side))
                    part = CellPart(part.base, side)
                    cell = ParsedCell((part,), cell.text)
                cells.append(cell)
            rows.append(ParsedRow(cells[0], cells[1], row.text))
            used[key] = used.get(key, 0) + 1
        out.append(ParsedSample(rows=tuple(rows), dropped=sample.dropped, empty=sample.empty))
    notes = tuple(
        f"sides as {min_votes}+ answers wrote them, none otherwise: "
        + " - ".join(CellPart(base, side).text for base, side in hints[key])
        + f" (applied to {count} unsided rows)"
        for key, count in used.items()
    )
    return tuple(out), notes


def objective_from_samples(
    samples: Sequence[ParsedSample],
    num_people: int,
    *,
    min_samples: int = 10,
    empty_backoff: int | None = None,
    disabled: frozenset[str] = frozenset(),
    lmm_weight: float = 1.0,
) -> ContactObjective:
    """The LMM part of the contact objective (DESIGN.md section 4).

    * Back-off: when t (:func:`backoff_threshold`: ``empty_backoff``, by default half of the
      samples rounded up; 0 = never) or more samples are empty, no LMM term at all,
      ``backed_off=True`` and a note saying why. When some but fewer samples are empty a
      note says how many ("3 of 20 answers were empty").
    * Two people: each sample with rows is one term of weight ``lmm_weight / N`` (N = all
      samples, empty ones included: the LMM loss is the mean over samples) whose options
      are :func:`sample_options` of its rows.
    * One person: a constraint (:func:`constraint_key`) is kept when at least
      ``min_samples`` (f) samples name it; each kept one is a term of weight ``lmm_weight``
      whose options are :func:`sample_options` of that one row: normally a single row whose
      alternatives are its left/right variants.
    * Rows whose key is in ``disabled`` are removed from every sample first.
    """
    _check_num_people(num_people)
    if lmm_weight < 0:
        raise ValueError("lmm_weight must be non-negative")
    total = len(samples)
    empty = sum(1 for sample in samples if sample.empty)
    threshold = backoff_threshold(empty_backoff, total)
    setting = backoff_text(empty_backoff, total)
    if total and threshold and empty >= threshold:
        note = (
            f"LMM contacts not used: {empty} of {total} answers were empty ({setting}); "
            "the image shows no reliable contact"
        )
        return ContactObjective(terms=(), backed_off=True, notes=(note,))
    terms: list[ContactTerm] = []
    notes: list[str] = []
    if empty:
        notes.append(f"{empty} of {total} answers were empty ({setting}): the other answers are used")
    samples, hint_notes = with_side_hints([ParsedSample(rows=_without_disabled(s, disabled), empty=s.empty) for s in samples])
    notes.extend(hint_notes)
    agreed: list[ContactTerm] = []
    if num_people == 2:
        agreed = _agreed_terms(samples, disabled, min_samples, total)
        for index, sample in enumerate(samples):
            rows = _without_disabled(sample, disabled)
            if not rows:
                continue
            options, warnings = sample_options(rows, 2)
            notes.extend(f"sample {index + 1}: {warning}" for warning in warnings)
            if not options:
                continue
            terms.append(
                ContactTerm(
                    options=options,
                    weight=lmm_weight / total,
                    source="lmm",
                    label=f"LMM sample {index + 1}",
                )
            )
    else:
        summary = summarize(
            [ParsedSample(rows=_without_disabled(s, disabled)) for s in samples], 1
        )
        first_row: dict[str, ParsedRow] = {}
        for sample in samples:
            for row in sample.rows:
                first_row.setdefault(constraint_key(row), row)
        for entry in summary:
            if entry.count < min_samples:
                continue
            options, warnings = sample_options((first_row[entry.key],), 1)
            notes.extend(warnings)
            if not options:
                notes.append(f"constraint {entry.label} dropped: no usable pair on one body")
                continue
            terms.append(
                ContactTerm(
                    options=options,
                    weight=lmm_weight,
                    source="lmm",
                    label=f"{entry.label} ({entry.count}/{total})",
                )
            )
        agreed = terms
    return ContactObjective(terms=tuple(terms), backed_off=False, notes=tuple(notes), agreed=tuple(agreed))


def _agreed_terms(samples: Sequence[ParsedSample], disabled: frozenset[str], min_samples: int, total: int) -> list[ContactTerm]:
    """Two people: one term per constraint that at least ``min_samples`` samples name, its
    options the sides and person orders of the first row so written (see
    ContactObjective.agreed)."""
    summary = summarize([ParsedSample(rows=_without_disabled(s, disabled)) for s in samples], 2)
    first_row: dict[str, ParsedRow] = {}
    for sample in samples:
        for row in _without_disabled(sample, disabled):
            first_row.setdefault(constraint_key(row), row)
    agreed = []
    for entry in summary:
        if entry.count < min_samples:
            continue
        options, _ = sample_options((first_row[entry.key],), 2)
        if options:
            agreed.append(ContactTerm(options=options, weight=1.0, source="lmm", label=f"{entry.label} ({entry.count}/{total})"))
    return agreed


def _region_alternatives(region: str) -> tuple[str, ...]:
    """``"hand"`` -> both hands; concrete regions and ``"ground"`` -> themselves."""
    if region == GROUND:
        return (GROUND,)
    if region in REGION_BASES and REGION_BASES[region].sided:
        return tuple(region_name(region, side) for side in SIDES)
    split_region(region)  # raises KeyError naming the known regions
    return (region,)


def artist_term(
    person_a: int, region_a: str, person_b: int, region_b: str, weight: float
) -> ContactTerm:
    """An explicit contact: ``region_a`` of ``person_a`` touches ``region_b`` of ``person_b``
    (0-based). Regions are concrete names ("left_hand", "back", "ground"); a sided base
    without a side ("hand") means whichever side is closer (one row, both as alternatives).
    A ground contact belongs to the person of the other region. Raises ValueError when no
    usable pair remains (e.g. a region with itself on one person)."""
    if region_a == GROUND:
        person_a, region_a, person_b, region_b = person_b, region_b, person_a, region_a
    if region_b == GROUND:
        person_b = person_a
    try:
        alternatives_a = _region_alternatives(region_a)
        alternatives_b = _region_alternatives(region_b)
    except KeyError as error:
        raise ValueError(str(error.args[0])) from None
    pairs = {
        pair
        for a in alternatives_a
        for b in alternatives_b
        if (pair := _pair(person_a, a, person_b, b)) is not None
    }
    if not pairs:
        raise ValueError(
            f"contact {region_a} - {region_b} of person {person_a + 1} is not usable: a region "
            "cannot touch itself, an overlapping region or its own adjacent segment"
        )
    right = GROUND if region_b == GROUND else f"P{person_b + 1} {region_b}"
    return ContactTerm(
        options=((tuple(sorted(pairs)),),),
        weight=float(weight),
        source="artist",
        label=f"P{person_a + 1} {region_a} - {right}",
    )
