"""From an LMM response's text to a :class:`engine.contacts.constraints.ParsedSample`.

The response is data: it is split into lines and cells and looked up in the vocabulary of
``engine.body.regions``; nothing in it is ever executed or evaluated.

What it copes with: reasoning before (and a sentence after) the table, code fences, quoted
blocks, missing outer pipes, bold/italic/backticked/quoted cells, header variants
("Person 1 part | Person 2 part", "Part | Part", "Body part A | Body part B", none at all),
alignment rows, extra columns (an index, notes, confidence: the two part columns are chosen by
header and by how many of their cells are parts), several tables (the last complete one wins:
a table cut off by the token limit is not complete), "None"/"N/A"/empty rows, plurals
("hands" = both hands), alternatives ("back, waist", "back / waist", "back or waist"),
explicit sides ("left hand"), synonyms and finer words (``engine.body.regions.SYNONYMS``),
"floor" for the ground, possessives ("Person 1's hand"), parenthetical remarks
("hand (palm)"), and garbage. Every row that cannot be used is kept with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.contacts.constraints import CellPart, DroppedRow, ParsedCell, ParsedRow, ParsedSample
from engine.lmm.words import FILLER_WORDS, NONE_CELLS, PLURAL_NOT_BOTH_SIDES
from engine.body.regions import ALL_PARTS, GROUND, PART_TO_BASE, REGION_BASES, SYNONYMS

# Longer texts are cut: no model writes a contact table this long, and the parser must stay
# fast on anything.
MAX_RESPONSE_CHARS = 40_000
MAX_CELL_CHARS = 80
MAX_ALTERNATIVES = 3

NO_TABLE_REASON = "no Markdown table in the response"


def _normalise_phrase(text: str) -> str:
    return " ".join(re.sub(r"[()]", " ", text.lower()).split())


def _build_lookup() -> dict[str, tuple[str, ...]]:
    lookup: dict[str, tuple[str, ...]] = {}
    for part in ALL_PARTS:
        lookup[_normalise_phrase(part)] = (part,)
    for word, parts in SYNONYMS.items():
        lookup.setdefault(_normalise_phrase(word), parts)
    return lookup


# normalised phrase -> vocabulary parts it may stand for
_LOOKUP = _build_lookup()
_LONGEST_PHRASE = max(len(key.split()) for key in _LOOKUP)

_HEADER_WORDS = re.compile(
    r"\b(person|persons|people|part|parts|region|regions|p ?[12]|subject|individual|column|"
    r"limb|body ?part|contact point)\b"
)
_IGNORED_COLUMN_WORDS = re.compile(
    r"(note|reason|descri|explan|confiden|certain|type|comment|detail|why|#|index|count|number|"
    r"evidence|visib|likel|probab|score|strength|kind|action|how|rationale|justif|^no\.?$|^n$)"
)
_PART_COLUMN_WORDS = re.compile(r"(part|person|region|limb|p ?[12]\b|\b[ab]\b|body)")

_ALIGNMENT_CELL = re.compile(r"^\s*:?-+:?\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE = re.compile(
    r"[={}\[\]<>$\\@^~|]|\w\(|\(\s*['\"]|\bimport\b|\blambda\b|\bexec\b|\beval\b|\bos\.\w|"
    r"\.\w+\(|\bdef\b|\bsystem\b|\bsubprocess\b|\bprint\b"
)
_SIDE_PAREN = re.compile(r"(\w+)\s*\(\s*(front|back)\s*\)")
_REMARK_PAREN = re.compile(r"\(\s*[a-z ,.'\-/]*\)")


@dataclass(frozen=True)
class _CellResult:
    cell: ParsedCell | None = None
    reason: str = ""
    is_none: bool = False


def _strip_markup(text: str) -> str:
    text = text.replace("\\|", "/")
    text = re.sub(r"<br\s*/?>", " ", text, flags=re.IGNORECASE)
    text = re.sub(r"[*`\"“”‘’«»]", "", text)
    text = re.sub(r"(^|\s)__+|__+(\s|$)", r"\1 \2", text)
    text = re.sub(r"'s\b", "", text)
    text = text.replace("'", "")
    text = re.sub(r"^\s*(?:[-•+]|\d+[.)])\s+", "", text)
    return " ".join(text.split()).strip(" .:!?")


def _singular_forms(word: str) -> list[str]:
    forms = []
    if word == "feet":
        forms.append("foot")
    if word.endswith("ves"):
        forms.append(word[:-3] + "f")
    if word.endswith("ies"):
        forms.append(word[:-3] + "y")
    if word.endswith("es"):
        forms.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        forms.append(word[:-1])
    return forms


def _lookup(phrase: str) -> tuple[tuple[str, ...], bool] | None:
    """Vocabulary parts of a phrase, and whether it was a plural; None when unknown."""
    if phrase in _LOOKUP:
        return _LOOKUP[phrase], False
    words = phrase.split()
    if not words:
        return None
    for singular in _singular_forms(words[-1]):
        candidate = " ".join(words[:-1] + [singular])
        if candidate in _LOOKUP:
            return _LOOKUP[candidate], singular not in PLURAL_NOT_BOTH_SIDES
    return None


def _scan(words: list[str]) -> tuple[tuple[tuple[str, ...], bool], ...]:
    """Every known phrase inside ``words``, longest first, without overlaps."""
    taken = [False] * len(words)
    found: list[tuple[int, tuple[tuple[str, ...], bool]]] = []
    for length in range(min(_LONGEST_PHRASE, len(words)), 0, -1):
        for start in range(len(words) - length + 1):
            if any(taken[start : start + length]):
                continue
            hit = _lookup(" ".join(words[start : start + length]))
            if hit is not None:
                found.append((start, hit))
                for index in range(start, start + length):
                    taken[index] = True
    found.sort(key=lambda item: item[0])
    return tuple(hit for _, hit in found)


def _parts_from_hit(hit: tuple[tuple[str, ...], bool], side: str | None, both: bool) -> list[CellPart]:
    parts, plural = hit
    result = []
    for part in parts:
        base = GROUND if part == GROUND else PART_TO_BASE[part]
        sided = base != GROUND and REGION_BASES[base].sided
        if not sided:
            result.append(CellPart(base))
        elif both or (plural and side is None):
            result.append(CellPart(base, None, True))
        else:
            result.append(CellPart(base, side))  # type: ignore[arg-type]
    return result


def _parse_alternative(phrase: str) -> list[CellPart] | str:
    """One alternative ("left hand", "both feet", "lower back") -> parts, or a reason."""
    words = phrase.split()
    has_left = "left" in words
    has_right = "right" in words
    both = "both" in words or (has_left and has_right)
    side = None if both else ("left" if has_left else "right" if has_right else None)
    core = [w for w in words if w not in ("left", "right", "both")]
    if not core:
        return f"{phrase!r} names no body part"
    hit = _lookup(" ".join(core))
    filtered = [w for w in core if w not in FILLER_WORDS]
    if hit is None and filtered:
        hit = _lookup(" ".join(filtered))
    if hit is None and "of" in filtered:
        # "back of the hand", "top of the head": the part is what follows the last "of"
        cut = len(filtered) - 1 - filtered[::-1].index("of")
        tail = [w for w in filtered[cut + 1 :] if w != "of"]
        if tail:
            tail_hit = _lookup(" ".join(tail))
            if tail_hit is None:
                tail_hits = _scan(tail)
                if len({parts for parts, _ in tail_hits}) == 1:
                    tail_hit = tail_hits[0]
            if tail_hit is not None:
                hit = tail_hit
    if hit is None:
        hits = _scan([w for w in filtered if w != "of"])
        distinct = {parts for parts, _plural in hits}
        name = " ".join(filtered) or " ".join(core)
        if not hits:
            return f"{name!r} is not a body part of the vocabulary"
        if len(distinct) > 1:
            listed = ", ".join(" or ".join(parts) for parts in sorted(distinct))
            return f"{name!r} names several parts ({listed}) in one alternative"
        hit = hits[0]
    return _parts_from_hit(hit, side, both)


def parse_cell(text: str) -> _CellResult:
    """A table cell -> its alternatives, a "None" marker, or the reason it is unusable."""
    cleaned = _strip_markup(text)
    lowered = cleaned.lower()
    if lowered in NONE_CELLS or re.fullmatch(r"[-–—_.\s]*", lowered):
        return _CellResult(is_none=True)
    if len(cleaned) > MAX_CELL_CHARS:
        return _CellResult(reason=f"cell {cleaned[:40]!r}... is too long for a part name")
    lowered = _SIDE_PAREN.sub(lambda m: f"{m.group(2)} {m.group(1)}", lowered)
    lowered = re.sub(r"\(\s*(left|right|both)\s*\)", r" \1 ", lowered)
    lowered = re.sub(r"([a-z])\(([a-z ,]*)\)", r"\1 (\2)", lowered)
    if _CODE.search(lowered):
        return _CellResult(reason=f"cell {cleaned!r} looks like code, not a body part")
    lowered = _REMARK_PAREN.sub(" ", lowered)
    lowered = lowered.replace("_", " ").replace("(", " ").replace(")", " ")
    lowered = re.sub(r"\b(left and right|right and left|left/right|right/left|l/r)\b", "both", lowered)
    pieces = [p.strip() for p in re.split(r"\s*(?:,|/|;|&|\+|\bor\b|\band\b|\band/or\b)\s*", lowered)]
    pieces = [" ".join(p.split()) for p in pieces if p.strip(" .-")]
    if not pieces:
        return _CellResult(is_none=True)
    if len(pieces) > MAX_ALTERNATIVES:
        return _CellResult(reason=f"cell {cleaned!r} lists more than {MAX_ALTERNATIVES} alternatives")
    parts: list[CellPart] = []
    for piece in pieces:
        parsed = _parse_alternative(piece)
        if isinstance(parsed, str):
            if len(pieces) == 1:
                return _CellResult(reason=parsed)
            # One bad alternative among good ones: keep the good ones.
            continue
        for part in parsed:
            if part not in parts:
                parts.append(part)
    if not parts:
        return _CellResult(reason=f"cell {cleaned!r} names no body part of the vocabulary")
    return _CellResult(cell=ParsedCell(tuple(parts), text=text.strip()))


# --------------------------------------------------------------------------------------------
# Tables


@dataclass
class _Table:
    lines: list[str]
    rows: list[list[str]]
    header: list[str] | None
    data_rows: list[tuple[str, list[str]]]
    complete: bool


def _split_cells(line: str) -> list[str]:
    stripped = line.strip()
    if stripped.startswith("|"):
        stripped = stripped[1:]
    if stripped.endswith("|") and not stripped.endswith("\\|"):
        stripped = stripped[:-1]
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", stripped)]


def _is_alignment(cells: list[str]) -> bool:
    return any(c.strip() for c in cells) and all(_ALIGNMENT_CELL.match(c) or not c.strip() for c in cells)


def _blocks(text: str) -> list[list[str]]:
    blocks: list[list[str]] = []
    current: list[str] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        while line.startswith(">"):
            line = line[1:].strip()
        if _FENCE.match(line):
            if current:
                blocks.append(current)
                current = []
            continue
        if "|" in line:
            current.append(line)
        else:
            if current:
                blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _make_table(lines: list[str], at_end: bool) -> _Table | None:
    rows = [_split_cells(line) for line in lines]
    if max(len(r) for r in rows) < 2:
        return None
    header: list[str] | None = None
    body_start = 0
    alignment = next((i for i, r in enumerate(rows) if _is_alignment(r)), None)
    if alignment is not None and alignment <= 2:
        if alignment > 0:
            header = rows[alignment - 1]
        body_start = alignment + 1
    elif _HEADER_WORDS.search(" ".join(rows[0]).lower()):
        header = rows[0]
        body_start = 1
    data_rows = [
        (lines[i], rows[i])
        for i in range(body_start, len(rows))
        if not _is_alignment(rows[i]) and any(c.strip() for c in rows[i])
    ]
    complete = True
    if at_end and data_rows:
        # Cut off by the token limit: the last line lacks the closing pipe the others have.
        last_line = data_rows[-1][0]
        others = [line for line in lines if line is not last_line]
        if others and all(line.endswith("|") for line in others) and not last_line.endswith("|"):
            complete = False
    return _Table(lines=lines, rows=rows, header=header, data_rows=data_rows, complete=complete)


def _choose_columns(table: _Table) -> tuple[int, int] | None:
    width = max(len(r) for r in table.rows)
    if width < 2:
        return None
    candidates = list(range(width))
    if table.header is not None:
        names = [(table.header[i].lower() if i < len(table.header) else "") for i in range(width)]
        names = [re.sub(r"[*`_\"']", "", name).strip() for name in names]
        candidates = [i for i in candidates if not _IGNORED_COLUMN_WORDS.search(names[i])]
        named = [i for i in candidates if _PART_COLUMN_WORDS.search(names[i])]
        if len(named) == 2:
            return named[0], named[1]
    if len(candidates) < 2:
        return None

    def score(column: int) -> int:
        total = 0
        for _line, cells in table.data_rows:
            if column < len(cells):
                result = parse_cell(cells[column])
                total += 1 if (result.cell is not None or result.is_none) else 0
        return total

    if width == 2 or len(candidates) == 2:
        return candidates[0], candidates[1]
    ranked = sorted(candidates, key=lambda column: (-score(column), column))[:2]
    return min(ranked), max(ranked)


def _split_adjacent_tables(block: list[str]) -> list[list[str]]:
    """Two tables with no blank line between them: a new one starts at each header row (one
    with header words) followed by an alignment row, after the first."""
    starts = [0]
    for index in range(2, len(block)):
        if (
            index - 1 > starts[-1] + 1
            and _is_alignment(_split_cells(block[index]))
            and _HEADER_WORDS.search(block[index - 1].lower())
        ):
            starts.append(index - 1)
    return [block[a:b] for a, b in zip(starts, starts[1:] + [len(block)])]


def _find_table(text: str) -> tuple[_Table | None, list[DroppedRow]]:
    blocks = [part for block in _blocks(text) for part in _split_adjacent_tables(block)]
    stripped = text.rstrip()
    tables: list[_Table] = []
    for block in blocks:
        at_end = stripped.endswith(block[-1])
        table = _make_table(block, at_end)
        if table is not None:
            tables.append(table)
    if not tables:
        return None, []
    for table in reversed(tables):
        if table.complete:
            return table, []
    # Only a cut-off table: use it without its cut row.
    table = tables[-1]
    cut_line, _ = table.data_rows.pop()
    return table, [DroppedRow(cut_line, "row cut off (the response hit its token limit)")]


def parse_response(text: str | None, num_people: int) -> ParsedSample:
    """Parse one response. Never raises on any text; every part returned is in the
    vocabulary; for two people the ground is not a part."""
    if num_people not in (1, 2):
        raise ValueError(f"num_people must be 1 or 2, not {num_people!r}")
    if not isinstance(text, str) or not text.strip():
        return ParsedSample(rows=(), dropped=(DroppedRow("", "the response is empty"),), empty=True)
    text = text[:MAX_RESPONSE_CHARS]
    table, dropped = _find_table(text)
    if table is None:
        return ParsedSample(rows=(), dropped=(DroppedRow("", NO_TABLE_REASON),), empty=True)
    columns = _choose_columns(table)
    rows: list[ParsedRow] = []
    if columns is None:
        dropped.append(DroppedRow("", "the table has no two part columns"))
        return ParsedSample(rows=(), dropped=tuple(dropped), empty=True)
    for line, cells in table.data_rows:
        first_text = cells[columns[0]] if columns[0] < len(cells) else ""
        second_text = cells[columns[1]] if columns[1] < len(cells) else ""
        first, second = parse_cell(first_text), parse_cell(second_text)
        if first.is_none or second.is_none:
            dropped.append(DroppedRow(line, "no contact (a None or empty cell)"))
            continue
        reason = first.reason or second.reason
        if reason:
            dropped.append(DroppedRow(line, reason))
            continue
        assert first.cell is not None and second.cell is not None
        row_or_reason = _check_row(first.cell, second.cell, num_people, line)
        if isinstance(row_or_reason, str):
            dropped.append(DroppedRow(line, row_or_reason))
        else:
            rows.append(row_or_reason)
    return ParsedSample(rows=tuple(rows), dropped=tuple(dropped), empty=not rows)


def _without_ground(cell: ParsedCell) -> ParsedCell | None:
    parts = tuple(part for part in cell.alternatives if part.base != GROUND)
    return ParsedCell(parts, cell.text) if parts else None


def _check_row(first: ParsedCell, second: ParsedCell, num_people: int, line: str) -> ParsedRow | str:
    if num_people == 2:
        first_kept, second_kept = _without_ground(first), _without_ground(second)
        if first_kept is None or second_kept is None:
            return "the ground is not a part for two people"
        return ParsedRow(first_kept, second_kept, line)
    if len(first.alternatives) == 1 and first.alternatives == second.alternatives:
        only = first.alternatives[0]
        if not only.sided or only.side is not None:
            return f"{only.text} cannot touch itself"
    return ParsedRow(first, second, line)
