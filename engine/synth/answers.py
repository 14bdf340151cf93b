"""Twenty LMM answer texts for a scene, in the format real models write: a few reasoning
sentences, then a Markdown table with one touching pair per row (Person 1 part | Person 2 part,
or Part | Part for one person), in the prompts' coarse vocabulary (``engine.lmm.prompts``).

The noise, all drawn from the scene's seed:

* 0-5 empty answers: an empty table, or "I cannot tell" without a table;
* 0-2 wrong-only answers: a neighbouring part or a plausible but absent contact;
* of the rest (at least 13, every one naming the true contact): 0-4 with an extra wrong row,
  0-2 that write left/right although the prompt forbids it (one time in four the mirrored
  sides, as a model reading the picture's left as the person's), the person order swapped
  in about a third (a model may choose who is Person 1; one person: the cells swapped),
  synonyms and plurals the parser knows (the type's answer variants), now and then a true
  row that is no ground-truth contact (a standing foot on the ground), and small format
  variations (bold cells, alignment rows, a closing sentence).
"""

from __future__ import annotations

import numpy as np

from engine.body.regions import GROUND
from engine.synth.types import ContactType

NUM_ANSWERS = 20
MAX_EMPTY = 5
MAX_WRONG_ONLY = 2
MAX_EXTRA_WRONG = 4
MAX_SIDED = 2

_OPENINGS = (
    "Let me look at the image carefully.",
    "Looking at the picture:",
    "Step by step:",
    "",
)
_CLOSINGS = (
    "Here is the table of touching parts:",
    "Contacts:",
    "So the touching pairs are:",
    "",
)
_UNSURE = (
    "I cannot tell from this image which body parts touch.",
    "The image is too ambiguous for me to say whether any parts are in contact.",
    "It is hard to see whether they touch; I am not sure.",
)


def region_words(region: str) -> str:
    """A concrete region as a model would write it with its side: "right hand",
    "left shoulder (front)", "waist (back)", "ground"."""
    if region == GROUND:
        return GROUND
    side = ""
    for prefix in ("left_", "right_"):
        if region.startswith(prefix):
            side, region = prefix[:-1] + " ", region[len(prefix):]
    words = region.replace("_front", " (front)").replace("_back", " (back)")
    return f"{side}{words}"


def _mirror_words(words: str) -> str:
    if words.startswith("left "):
        return "right " + words[5:]
    if words.startswith("right "):
        return "left " + words[6:]
    return words


def _table(rows: list[tuple[str, str]], num_people: int, rng: np.random.Generator) -> str:
    header = ("Person 1 part", "Person 2 part") if num_people == 2 else ("Part", "Part")
    alignment = ("---", ":---", "-----")[int(rng.integers(3))]
    bold = rng.random() < 0.15
    lines = [f"| {header[0]} | {header[1]} |", f"| {alignment} | {alignment} |"]
    for a, b in rows:
        if bold:
            a, b = f"**{a}**", f"**{b}**"
        lines.append(f"| {a} | {b} |")
    return "\n".join(lines)


def _text(kind: ContactType, rows: list[tuple[str, str]], rng: np.random.Generator, reasoning: bool = True) -> str:
    parts = []
    opening = _OPENINGS[int(rng.integers(len(_OPENINGS)))]
    if opening:
        parts.append(opening)
    if reasoning and kind.reasoning:
        count = int(rng.integers(1, len(kind.reasoning) + 1))
        chosen = sorted(rng.choice(len(kind.reasoning), size=count, replace=False).tolist())
        parts.append(" ".join(kind.reasoning[i] for i in chosen))
    closing = _CLOSINGS[int(rng.integers(len(_CLOSINGS)))]
    text = "\n\n".join(parts + ([closing] if closing else []))
    return f"{text}\n\n{_table(rows, kind.num_people, rng)}" if text else _table(rows, kind.num_people, rng)


def _empty(kind: ContactType, rng: np.random.Generator) -> str:
    unsure = _UNSURE[int(rng.integers(len(_UNSURE)))]
    if rng.random() < 0.5:
        return unsure
    return f"{unsure}\n\n{_table([], kind.num_people, rng)}"


def answer_texts(kind: ContactType, contacts: tuple[tuple[int, str, int, str], ...], rng: np.random.Generator) -> tuple[str, ...]:
    """The scene's 20 answers (see the module docstring); ``contacts`` are the scene's
    ground-truth contacts with their sides (after mirroring), for the answers that write
    sides."""
    num_empty = int(rng.integers(0, MAX_EMPTY + 1))
    num_wrong_only = int(rng.integers(0, MAX_WRONG_ONLY + 1))
    num_correct = NUM_ANSWERS - num_empty - num_wrong_only
    extra_wrong = set(rng.choice(num_correct, size=int(rng.integers(0, MAX_EXTRA_WRONG + 1)), replace=False).tolist())
    sided = set(rng.choice(num_correct, size=int(rng.integers(0, MAX_SIDED + 1)), replace=False).tolist())
    answers: list[str] = []
    for index in range(num_correct):
        if index in sided:
            flip = rng.random() < 0.25
            rows = []
            for _a, ra, _b, rb in contacts:
                words = (region_words(ra), region_words(rb))
                rows.append(tuple(_mirror_words(w) for w in words) if flip else words)
        else:
            # The plain form most of the time, otherwise one of the variants.
            variant = 0 if rng.random() < 0.5 else int(rng.integers(len(kind.answers)))
            rows = list(kind.answers[variant])
        if index in extra_wrong:
            rows.append(kind.wrong[int(rng.integers(len(kind.wrong)))])
        if kind.also_true and rng.random() < 0.3:
            rows.append(kind.also_true[int(rng.integers(len(kind.also_true)))])
        if rng.random() < 0.33:
            rows = [(b, a) for a, b in rows]
        answers.append(_text(kind, rows, rng))
    for _ in range(num_wrong_only):
        answers.append(_text(kind, [kind.wrong[int(rng.integers(len(kind.wrong)))]], rng))
    for _ in range(num_empty):
        answers.append(_empty(kind, rng))
    order = rng.permutation(NUM_ANSWERS)
    return tuple(answers[i] for i in order)


def names_contact(sample, contacts: tuple[tuple[int, str, int, str], ...]) -> bool:
    """Whether a parsed sample (``engine.contacts.constraints.ParsedSample``) has a row whose
    two cells can stand for the two regions of one of ``contacts``, in either order (a cell
    "shoulder" stands for either shoulder, front or back)."""
    from engine.body.regions import composite_members

    def members(region: str) -> set[str]:
        return {GROUND} if region == GROUND else set(composite_members(region))

    def covers(cell, region: str) -> bool:
        return any(members(name) & members(region) for name in cell.regions)

    return any(
        (covers(row.first, ra) and covers(row.second, rb)) or (covers(row.first, rb) and covers(row.second, ra))
        for row in sample.rows
        for _a, ra, _b, rb in contacts
    )
