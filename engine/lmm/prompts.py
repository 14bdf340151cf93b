"""The prompts: a system message asking for reasoning first and then a two-column Markdown
table of touching parts, built from the vocabulary in ``engine.body.regions``.

A prompt's ``prompt_id`` names its wording; change the id whenever the text changes so cached
responses and contacts files say which wording produced them."""

from __future__ import annotations

from dataclasses import dataclass

from engine.body.regions import GROUND, ONE_PERSON_PARTS, PART_TO_BASE, REGION_BASES, TWO_PERSON_PARTS


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    system: str
    user: str
    # The table's two column titles, as the prompt spells them.
    columns: tuple[str, str]


def _describe(part: str) -> str:
    if part == GROUND:
        return "the floor or any surface the person stands, sits or lies on"
    return REGION_BASES[PART_TO_BASE[part]].description


def _vocabulary_lines(parts: tuple[str, ...]) -> str:
    return "\n".join(f"- {part}: {_describe(part)}" for part in parts)


_TWO_PEOPLE_SYSTEM = """You are an expert at reading human poses in images. You will see a photo \
of two people and must say which of their body parts are in physical contact.

Use only these body parts, written exactly as listed:
{vocabulary}

Rules:
- First think step by step: describe what each person is doing, where their arms, hands, legs \
and feet are, and which parts actually touch the other person (not just come close).
- Then write one Markdown table with exactly two columns, titled "{col_a}" and "{col_b}". Each \
row is one pair of parts that touch: a part of Person 1 and a part of Person 2.
- You choose which person is Person 1; keep that choice for the whole table.
- Do not write left or right: name the part only (write "hand", not "left hand"). If both hands \
(or both arms, legs, feet) touch the same part, write one row per hand.
- If you are unsure which of two or three parts touches, list them in one cell separated by \
commas, for example "back, waist (back)".
- Only list contacts you can see. If the people do not touch or you cannot tell, write the \
table with its header and no rows.
- Write nothing after the table."""

_ONE_PERSON_SYSTEM = """You are an expert at reading human poses in images. You will see a photo \
of one person and must say which of their body parts touch each other (self-contact) or touch \
the ground.

Use only these parts, written exactly as listed:
{vocabulary}

Rules:
- First think step by step: describe the pose, where the arms, hands, legs and feet are, which \
parts rest on each other and which parts rest on the ground.
- Then write one Markdown table with exactly two columns, titled "{col_a}" and "{col_b}". Each \
row is one pair of parts that touch, such as "hand | head" or "foot | ground".
- Do not write left or right: name the part only. One hand touching the other is "hand | hand" \
(the same for feet, legs, arms); the back, head or stomach never touches itself, and a hand \
touching its own arm or a foot touching its own leg at the joint does not count.
- If you are unsure which of two or three parts touches, list them in one cell separated by \
commas, for example "leg, foot".
- Only list contacts you can see. If nothing touches or you cannot tell, write the table with \
its header and no rows.
- Write nothing after the table."""

_BOX_NOTE = (
    " Person {index} is the person inside the {colour} rectangle drawn on the image."
)
BOX_COLOURS: tuple[str, ...] = ("red", "blue")


def build_prompt(num_people: int, *, boxes: int = 0) -> Prompt:
    """The prompt for one or two people; ``boxes`` = how many people are marked with a
    rectangle on the image (see ``engine.lmm.image``)."""
    if num_people == 2:
        columns = ("Person 1 part", "Person 2 part")
        system = _TWO_PEOPLE_SYSTEM.format(
            vocabulary=_vocabulary_lines(TWO_PERSON_PARTS), col_a=columns[0], col_b=columns[1]
        )
        user = "Which body parts of these two people touch each other?"
        prompt_id = "two_people_v1"
    elif num_people == 1:
        columns = ("Part", "Part")
        system = _ONE_PERSON_SYSTEM.format(
            vocabulary=_vocabulary_lines(ONE_PERSON_PARTS), col_a=columns[0], col_b=columns[1]
        )
        user = "Which body parts of this person touch each other or the ground?"
        prompt_id = "one_person_v1"
    else:
        raise ValueError(f"the prompts cover one or two people, not {num_people}")
    if boxes:
        if boxes > num_people:
            raise ValueError(f"{boxes} boxes given for {num_people} people")
        user += "".join(
            _BOX_NOTE.format(index=index + 1, colour=BOX_COLOURS[index]) for index in range(boxes)
        )
        prompt_id += f"_boxes{boxes}"
    return Prompt(prompt_id=prompt_id, system=system, user=user, columns=columns)
