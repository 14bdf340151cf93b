"""Where the bodies stand: the default floor of a job, and the ground rows far from it.

A job's ``options.floor_height`` is optional. Without it the floor is the lowest point of the
foot regions (``left_foot``, ``right_foot``, every vertex) in the first frame's initial poses:
an Anny body at its default placement stands with its soles about 0.8 m below its origin, and
a floor at z = 0 would turn every "foot - ground" row into a long pull.

With two people the floor is the lower of their lowest foot points. The contact loss has one
floor plane for everyone (``engine.refine.problem`` and ``losses`` take one height), and the
lower foot is the one that stands on the ground when the other is lifted (a step, a kick, a
jump); a person standing on something higher gets no floor of their own: give the job a
``floor_height`` then. A ground row that starts far from the floor is reported, never pulled
silently (:func:`far_ground_rows`).

Imports torch and the body interface, never bpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from engine.body.base import BodyModel
from engine.body.regions import region_name
from engine.contacts.objective import ContactObjective
from engine.refine.losses.contact import RegionVertices
from engine.refine.optimizer import PeopleState

FOOT_REGIONS: tuple[str, ...] = (region_name("foot", "left"), region_name("foot", "right"))

# A ground row whose region is farther than this from the floor in the initial pose is reported.
FAR_FROM_FLOOR_M = 0.20


def _lowest_points(body: BodyModel, state: PeopleState, vertex_ids: np.ndarray) -> torch.Tensor:
    """(N, len(vertex_ids)) heights (world z) of the given mesh vertices of every person."""
    ids = torch.as_tensor(np.asarray(vertex_ids, dtype=np.int64))
    with torch.no_grad():
        output = body.forward(state.local_rotations, state.root_translation, state.shape, ids)
    return output.vertices[..., 2]


def lowest_foot_points(body: BodyModel, regions: RegionVertices, state: PeopleState) -> list[float]:
    """Per person: the height (world z, metres) of the lowest vertex of either foot region."""
    ids = np.unique(np.concatenate([np.asarray(regions.vertex_ids(r)) for r in FOOT_REGIONS]))
    return [float(v) for v in _lowest_points(body, state, ids).min(dim=1).values]


def default_floor(body: BodyModel, regions: RegionVertices, state: PeopleState) -> float:
    """The floor of a job without ``floor_height``: the lowest foot point over the people of
    ``state`` (the first frame's initial poses); see the module docstring for why one."""
    return min(lowest_foot_points(body, regions, state))


@dataclass(frozen=True)
class GroundRow:
    """A row of the objective that only the floor satisfies: the person and the regions of
    its alternatives (the closest one counts), e.g. both feet for an unsided "foot | ground"."""

    person: int
    regions: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"P{self.person + 1} {' or '.join(self.regions)} - ground"


def ground_rows(objective: ContactObjective) -> list[GroundRow]:
    """The distinct rows of ``objective`` whose every alternative is a ground pair, in the
    order they first appear (a row mixing ground and body alternatives is left out: a body
    alternative may satisfy it)."""
    found: dict[tuple[int, tuple[str, ...]], None] = {}
    for term in objective.terms:
        for option in term.options:
            for row in option:
                if not row or not all(pair.is_ground for pair in row):
                    continue
                people = {pair.person_a for pair in row}
                for person in sorted(people):
                    regions = tuple(dict.fromkeys(p.region_a for p in row if p.person_a == person))
                    found.setdefault((person, regions), None)
    return [GroundRow(person, regions) for person, regions in found]


def ground_row_gaps(
    body: BodyModel,
    regions: RegionVertices,
    state: PeopleState,
    rows: Sequence[GroundRow],
    floor_height: float,
) -> list[float]:
    """Per row: how far (metres) its closest alternative region is from the floor in
    ``state``, measured like the contact loss measures a ground pair (the region's lowest
    vertex, above or below the floor), on the region's every vertex."""
    names = sorted({region for row in rows for region in row.regions})
    if not names:
        return []
    ids = {name: np.asarray(regions.vertex_ids(name), dtype=np.int64) for name in names}
    every = np.unique(np.concatenate(list(ids.values())))
    heights = _lowest_points(body, state, every).numpy()
    lowest = {
        (person, name): float(heights[person, np.searchsorted(every, ids[name])].min())
        for person in range(heights.shape[0])
        for name in names
    }
    return [min(abs(lowest[(row.person, name)] - floor_height) for name in row.regions) for row in rows]


def far_ground_rows(
    body: BodyModel,
    regions: RegionVertices,
    state: PeopleState,
    objective: ContactObjective,
    floor_height: float,
    limit: float = FAR_FROM_FLOOR_M,
) -> list[tuple[GroundRow, float]]:
    """The ground rows of ``objective`` farther than ``limit`` from the floor in ``state``,
    with their distance."""
    rows = ground_rows(objective)
    gaps = ground_row_gaps(body, regions, state, rows, floor_height)
    return [(row, gap) for row, gap in zip(rows, gaps) if gap > limit]
