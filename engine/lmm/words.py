"""Word lists of the table parser (``engine.lmm.parser``). Body-part words themselves live in
``engine.body.regions`` (parts and ``SYNONYMS``); these are the words around them."""

from __future__ import annotations

# Plurals of these words mean several of them on one hand or foot, not both sides.
PLURAL_NOT_BOTH_SIDES = frozenset({"finger", "fingertip", "toe", "knuckle", "thumb", "rib"})

# Words that say whose part or what kind of thing it is, never which part.
FILLER_WORDS = frozenset(
    {
        "the", "a", "an", "his", "her", "their", "its", "my", "your", "one", "person",
        "persons", "people", "p1", "p2", "1", "2", "1s", "2s", "b", "own", "other", "partner",
        "partners", "subject", "individual", "man", "woman", "boy", "girl", "child", "on",
        "area", "region", "part", "parts", "s",
    }
)

# Cells that say "no contact" (after markup is stripped and case lowered).
NONE_CELLS = frozenset(
    {
        "", "none", "n/a", "na", "n.a", "-", "--", "---", "—", "–", "nothing", "no contact",
        "no contacts", "null", "nil", "empty", "no", "not applicable", "not visible", "unknown",
        "?", "...", "…", "x", "no touching", "nobody", "no one",
    }
)
