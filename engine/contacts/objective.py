"""The contact objective: what the contact loss needs, independent of where it came from.

Aggregation of LMM samples (``engine/contacts/constraints.py``) and explicit artist constraints both
produce a :class:`ContactObjective`; the loss (``engine/refine/losses``) evaluates it. Its value is

    sum over terms t of  t.weight * min over options o of ( sum over rows r in o of
                                                            min over alternatives a in r of d(a) )

where d(a) is the minimum distance between the two regions of the pair ``a`` (or the distance
of a region to the floor plane when one side is ``"ground"``).

* Two people, one LMM sample = one term of weight 1/N; its options are the left/right
  assignments times the two person orders; each row's alternatives come from cells that list
  alternatives ("back, waist").
* One person, one kept row = one term of weight 1 (times the LMM weight); one option; the
  row's alternatives are its left/right variants.
* An artist's contact = one term with the artist's weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.body.regions import GROUND, MESH_REGIONS

ConstraintSource = Literal["lmm", "artist"]


@dataclass(frozen=True, order=True)
class RegionPair:
    """Two concrete regions that should touch: ``region_a`` of person ``person_a`` and
    ``region_b`` of person ``person_b`` (0-based). ``region_b`` may be ``"ground"``, in which
    case ``person_b`` is ignored and must equal ``person_a``."""

    person_a: int
    region_a: str
    person_b: int
    region_b: str

    def __post_init__(self) -> None:
        for region in (self.region_a, self.region_b):
            if region != GROUND and region not in MESH_REGIONS:
                raise ValueError(f"unknown region {region!r} in contact pair")
        if self.region_a == GROUND:
            raise ValueError("put 'ground' as region_b of a contact pair, not region_a")
        if self.person_a < 0 or self.person_b < 0:
            raise ValueError("person indices are 0-based and non-negative")
        if self.region_b == GROUND and self.person_b != self.person_a:
            raise ValueError("a ground contact pair names the same person on both sides")

    @property
    def is_ground(self) -> bool:
        return self.region_b == GROUND

    def label(self) -> str:
        right = GROUND if self.is_ground else f"P{self.person_b + 1} {self.region_b}"
        return f"P{self.person_a + 1} {self.region_a} - {right}"


# A row is satisfied by its closest alternative.
Row = tuple[RegionPair, ...]
# An option (one left/right assignment and person order) sums its rows.
Option = tuple[Row, ...]


@dataclass(frozen=True)
class ContactTerm:
    """One weighted min-over-options term of the contact objective."""

    options: tuple[Option, ...]
    weight: float
    source: ConstraintSource
    label: str

    def __post_init__(self) -> None:
        if not self.options or any(not option for option in self.options):
            raise ValueError(f"contact term {self.label!r} has an empty option")
        if any(not row for option in self.options for row in option):
            raise ValueError(f"contact term {self.label!r} has a row without alternatives")
        if not (self.weight >= 0.0):
            raise ValueError(f"contact term {self.label!r} has a negative or NaN weight")

    def pairs(self) -> tuple[RegionPair, ...]:
        """Every distinct pair this term may use, in a stable order."""
        return tuple(sorted({pair for option in self.options for row in option for pair in row}))


@dataclass(frozen=True)
class ContactObjective:
    """Everything the contact loss evaluates for one frame."""

    terms: tuple[ContactTerm, ...]
    # True when t or more LMM samples were empty: the LMM terms were dropped on purpose.
    backed_off: bool = False
    # Human-readable notes for the result file (e.g. why back-off happened).
    notes: tuple[str, ...] = ()
    # The LMM constraints that at least f samples name (the one-person rule, for two people
    # as well), one term each, whose options are that constraint's sides and person orders.
    # Not a loss: with the artist's terms they are the contacts the refinement must close
    # (engine.refine.problem.must_close_terms).
    agreed: tuple[ContactTerm, ...] = ()

    def must_close(self) -> tuple[ContactTerm, ...]:
        """The agreed LMM constraints and every term that is not the LMM's (the artist's)."""
        return self.agreed + tuple(term for term in self.terms if term.source != "lmm")

    def pairs(self) -> tuple[RegionPair, ...]:
        """Every distinct region pair of every term: the loss computes each one's distance
        once per iteration and gathers from there."""
        return tuple(sorted({pair for term in self.terms for pair in term.pairs()}))
