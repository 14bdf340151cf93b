"""Response texts in the styles real multimodal models write, each with its expected parse.

``expected`` lists the kept rows in order as (first cell, second cell) tokens: a cell token is
its alternatives' tokens sorted and joined by "+" (``hand``, ``left_hand``, ``both_hand``,
``back+waist_back``, ``ground``). ``dropped`` is the number of rows the parser must drop (with
a reason), or None to leave it unchecked."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResponseCase:
    name: str
    num_people: int
    text: str
    expected: tuple[tuple[str, str], ...]
    dropped: int | None = None


FENCE = "`" * 3

CASES: tuple[ResponseCase, ...] = (
    ResponseCase(
        "clean_hug",
        2,
        """The two people are hugging. Person 1 wraps both arms around Person 2, whose head rests
on Person 1's shoulder.

| Person 1 part | Person 2 part |
|---|---|
| hand | back |
| hand | back |
| chest | chest |
| shoulder (front) | head |
""",
        (("hand", "back"), ("hand", "back"), ("chest", "chest"), ("shoulder_front", "head")),
        0,
    ),
    ResponseCase(
        "code_fence_no_outer_pipes",
        2,
        f"""Reasoning: they shake hands.

{FENCE}markdown
Person 1 part | Person 2 part
--- | ---
hand | hand
{FENCE}
""",
        (("hand", "hand"),),
        0,
    ),
    ResponseCase(
        "bold_cells",
        2,
        """**Analysis**: Person 2 leans on Person 1.

| **Person 1 part** | **Person 2 part** |
|:--|:--|
| **Hand** | **Shoulder (back)** |
| **Arm** | **Arm** |
""",
        (("hand", "shoulder_back"), ("arm", "arm")),
        0,
    ),
    ResponseCase(
        "body_part_a_b_header_with_alternatives",
        2,
        """| Body part A | Body part B |
| ----------- | ----------- |
| hand | back, waist (back) |
| head | neck |
""",
        (("hand", "back+waist_back"), ("head", "neck")),
        0,
    ),
    ResponseCase(
        "plural_hands",
        2,
        """Both of Person 1's hands are on Person 2's waist while dancing.

| Person 1 part | Person 2 part |
|---|---|
| hands | waist |
| chest | chest |
""",
        (("both_hand", "waist"), ("chest", "chest")),
        0,
    ),
    ResponseCase(
        "explicit_sides_despite_instructions",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| left hand | right shoulder |
| right hand | left hand |
""",
        (("left_hand", "right_shoulder"), ("right_hand", "left_hand")),
        0,
    ),
    ResponseCase(
        "none_row_only",
        2,
        """The two people stand apart and do not touch.

| Person 1 part | Person 2 part |
|---|---|
| None | None |
""",
        (),
        1,
    ),
    ResponseCase(
        "empty_table",
        2,
        """I cannot see any clear contact between them.

| Person 1 part | Person 2 part |
|---|---|
""",
        (),
        0,
    ),
    ResponseCase(
        "no_table_at_all",
        2,
        "The image is too blurry to tell whether the two people touch. I will not guess.",
        (),
        None,
    ),
    ResponseCase(
        "refusal",
        1,
        "I'm sorry, but I can't help with identifying people in images.",
        (),
        None,
    ),
    ResponseCase(
        "draft_then_final_table",
        2,
        """First draft:

| Person 1 part | Person 2 part |
|---|---|
| hand | head |

Looking again, the hand is on the neck, not the head. Final answer:

| Person 1 part | Person 2 part |
|---|---|
| hand | neck |
| arm | shoulder (back) |
""",
        (("hand", "neck"), ("arm", "shoulder_back")),
        0,
    ),
    ResponseCase(
        "truncated_last_table_uses_previous",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| hand | back |

Let me refine this with more detail:

| Person 1 part | Person 2 part |
|---|---|
| hand | back |
| arm | sho""",
        (("hand", "back"),),
        0,
    ),
    ResponseCase(
        "only_table_truncated",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| hand | back |
| head | shoul""",
        (("hand", "back"),),
        1,
    ),
    ResponseCase(
        "extra_columns_with_notes",
        2,
        """| # | Person 1 part | Person 2 part | Notes |
|---|---|---|---|
| 1 | hand | back | his hand rests on her back |
| 2 | head | shoulder | her head on his shoulder |
""",
        (("hand", "back"), ("head", "shoulder")),
        0,
    ),
    ResponseCase(
        "extra_confidence_column_no_header",
        2,
        """hand | back | high
arm | shoulder | low
""",
        (("hand", "back"), ("arm", "shoulder")),
        0,
    ),
    ResponseCase(
        "adversarial_import_cell",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| __import__('os').system('rm -rf /') | hand |
| hand | back |
""",
        (("hand", "back"),),
        1,
    ),
    ResponseCase(
        "adversarial_python_code_cells",
        1,
        """| Part | Part |
|---|---|
| print(open('/etc/passwd').read()) | back |
| eval("hand") | head |
| lambda x: x | foot |
| hand | head |
""",
        (("hand", "head"),),
        3,
    ),
    ResponseCase(
        "adversarial_sql_and_template",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| '; DROP TABLE contacts; -- | back |
| {{ config.items() }} | hand |
| ${HOME} | head |
| chest | back |
""",
        (("chest", "back"),),
        3,
    ),
    ResponseCase(
        "synonyms_forearm_shoulder_blade",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| forearm | shoulder blade |
| fingers | cheek |
| wrist | neck |
""",
        (("arm", "back+shoulder_back"), ("hand", "head"), ("hand", "neck")),
        0,
    ),
    ResponseCase(
        "one_person_floor",
        1,
        """The person is standing on the floor with hands on the hips.

| Part | Part |
|---|---|
| feet | floor |
| hands | hips |
""",
        (("both_foot", "ground"), ("both_hand", "butt+waist")),
        0,
    ),
    ResponseCase(
        "one_person_sitting_self_contact",
        1,
        """Thinking: she sits cross-legged on a mat, one hand on her knee and her chin resting on
the other hand.

| Part | Part |
|------|------|
| butt | ground |
| hand | knee |
| hand | chin |
| leg | leg |
""",
        (("butt", "ground"), ("hand", "leg"), ("hand", "head"), ("leg", "leg")),
        0,
    ),
    ResponseCase(
        "one_person_clap",
        1,
        """| Part | Part |
|---|---|
| hands | hands |
""",
        (("both_hand", "both_hand"),),
        0,
    ),
    ResponseCase(
        "one_person_self_pairs_dropped",
        1,
        """| Part | Part |
|---|---|
| back | back |
| ground | floor |
| foot | ground |
""",
        (("foot", "ground"),),
        2,
    ),
    ResponseCase(
        "two_people_ground_row_dropped",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| foot | ground |
| hand | hand |
| foot, floor | leg |
""",
        (("hand", "hand"), ("foot", "leg")),
        1,
    ),
    ResponseCase(
        "quoted_cells",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| "hand" | 'back' |
| “head” | ‘chest’ |
""",
        (("hand", "back"), ("head", "chest")),
        0,
    ),
    ResponseCase(
        "backticked_and_italic_cells",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| `hand` | `head` |
| *arm* | _neck_ |
""",
        (("hand", "head"), ("arm", "neck")),
        0,
    ),
    ResponseCase(
        "header_p1_p2",
        2,
        """| P1 | P2 |
|----|----|
| stomach | back |
""",
        (("stomach", "back"),),
        0,
    ),
    ResponseCase(
        "header_person_a_b_no_alignment",
        2,
        """Person A | Person B
hand | arm
foot | foot
""",
        (("hand", "arm"), ("foot", "foot")),
        0,
    ),
    ResponseCase(
        "part_part_header_for_two_people",
        2,
        """| Part | Part |
|:-:|:-:|
| butt | leg |
""",
        (("butt", "leg"),),
        0,
    ),
    ResponseCase(
        "bare_rows_no_header",
        2,
        """Contacts:
| hand | back |
| head | head |
""",
        (("hand", "back"), ("head", "head")),
        0,
    ),
    ResponseCase(
        "reasoning_heavy_with_lists",
        2,
        """Let me analyse the image step by step.

1. Person 1 (on the left) is a man carrying Person 2 piggyback.
2. Person 2's arms go around Person 1's neck; her hands meet at his chest.
3. Person 1's hands hold Person 2's legs behind the knees.
4. Person 2's chest presses against Person 1's back.
   - Her stomach may also touch his waist (back), but it is hidden.

Therefore:

| Person 1 part | Person 2 part |
|---|---|
| neck | arm |
| chest | hand |
| hand | leg |
| hand | leg |
| back | chest |
| waist (back) | stomach |

These are all the contacts I can see.
""",
        (
            ("neck", "arm"),
            ("chest", "hand"),
            ("hand", "leg"),
            ("hand", "leg"),
            ("back", "chest"),
            ("waist_back", "stomach"),
        ),
        0,
    ),
    ResponseCase(
        "mixed_none_dash_rows",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| N/A | N/A |
| - | - |
| hand | shoulder |
|  |  |
""",
        (("hand", "shoulder"),),
        1,  # "| - | - |" reads as an alignment row, the blank row as nothing: both skipped
    ),
    ResponseCase(
        "garbage_table",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| banana | spaceship |
| 42 | ??? |
| lorem ipsum | dolor |
""",
        (),
        3,
    ),
    ResponseCase(
        "alternatives_or_and_slash",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| back or waist | hand |
| back / waist (back) | arm |
| chest; stomach | head |
""",
        (("back+waist", "hand"), ("back+waist_back", "arm"), ("chest+stomach", "head")),
        0,
    ),
    ResponseCase(
        "left_and_right_and_both",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| left and right hands | back |
| Both hands | shoulders |
| both feet | leg |
""",
        (("both_hand", "back"), ("both_hand", "both_shoulder"), ("both_foot", "leg")),
        0,
    ),
    ResponseCase(
        "possessives_and_sides",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| Person 1's right hand | Person 2's left shoulder |
| His palm | her lower back |
""",
        (("right_hand", "left_shoulder"), ("hand", "waist_back")),
        0,
    ),
    ResponseCase(
        "hip_synonym_alternatives",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| hip | hand |
| torso | arm |
""",
        (("butt+waist", "hand"), ("back+chest+stomach", "arm")),
        0,
    ),
    ResponseCase(
        "too_many_alternatives",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| head, neck, chest, back | hand |
| neck | hand |
""",
        (("neck", "hand"),),
        1,
    ),
    ResponseCase(
        "html_break_and_parenthetical_remarks",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| hand<br>(palm) | back (upper) |
| arm (forearm) | waist(front) |
""",
        (("hand", "back"), ("arm", "waist_front")),
        0,
    ),
    ResponseCase(
        "blockquoted_table",
        2,
        """> Here is my answer:
>
> | Person 1 part | Person 2 part |
> |---|---|
> | hand | chest |
""",
        (("hand", "chest"),),
        0,
    ),
    ResponseCase(
        "several_parts_in_one_alternative",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| hand on shoulder | back |
| arm | back |
""",
        (("arm", "back"),),
        1,
    ),
    ResponseCase(
        "emoji_and_upper_case",
        2,
        """| PERSON 1 PART | PERSON 2 PART |
|---|---|
| HAND ✋ | BACK |
| Foot 🦶 | Shin |
""",
        (("hand", "back"), ("foot", "leg")),
        0,
    ),
    ResponseCase(
        "json_instead_of_table",
        2,
        """[{"person1": "hand", "person2": "back"}]""",
        (),
        None,
    ),
    ResponseCase(
        "one_cell_missing",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| hand | |
| hand
| head | head |
""",
        (("head", "head"),),
        2,
    ),
    ResponseCase(
        "thighs_and_lap",
        2,
        """Person 2 sits on Person 1's lap.

| Person 1 part | Person 2 part |
|---|---|
| lap | butt |
| thighs | thighs |
""",
        (("leg", "butt"), ("both_leg", "both_leg")),
        0,
    ),
    ResponseCase(
        "one_person_explicit_sides",
        1,
        """| Part | Part |
|---|---|
| left foot | right leg |
| right hand | right hand |
| left elbow | left knee |
""",
        (("left_foot", "right_leg"), ("left_arm", "left_leg")),
        1,
    ),
    ResponseCase(
        "back_of_the_hand_and_small_of_the_back",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| back of the hand | small of the back |
| top of the head | chin |
""",
        (("hand", "waist_back"), ("head", "head")),
        0,
    ),
    ResponseCase(
        "tabs_and_spacing",
        2,
        "|\tPerson 1 part\t|\tPerson 2 part\t|\n|\t---\t|\t---\t|\n|   hand\t|   neck   |\n",
        (("hand", "neck"),),
        0,
    ),
    ResponseCase(
        "table_then_remark_after",
        1,
        """| Part | Part |
|---|---|
| hand | face |

Note: the other hand may touch the thigh, but I am not sure.
""",
        (("hand", "head"),),
        0,
    ),
    ResponseCase(
        "escaped_pipe_and_regex_noise",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| .*(hand)+ | back |
| hand \\| arm | back |
""",
        (("arm+hand", "back"),),
        1,
    ),
    ResponseCase(
        "index_column_and_contact_type",
        2,
        """| No. | Person 1 part | Person 2 part | Contact type |
|---|---|---|---|
| 1 | hand | hand | holding |
| 2 | shoulder (front) | shoulder (front) | pressing |
""",
        (("hand", "hand"), ("shoulder_front", "shoulder_front")),
        0,
    ),
    ResponseCase(
        "two_tables_without_blank_line",
        2,
        """| Person 1 part | Person 2 part |
|---|---|
| hand | head |
| Person 1 part | Person 2 part |
|---|---|
| hand | neck |
| chest | back |
""",
        (("hand", "neck"), ("chest", "back")),
        0,
    ),
    ResponseCase(
        "think_block_with_draft_table",
        1,
        """<think>
The woman does a plank. Maybe:
| Part | Part |
|---|---|
| hand | ground |
Hmm, actually her forearms are on the floor, not the hands.
</think>

| Part | Part |
|---|---|
| forearms | floor |
| feet | floor |
""",
        (("both_arm", "ground"), ("both_foot", "ground")),
        0,
    ),
)
