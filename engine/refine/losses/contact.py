"""The contact loss: a :class:`~engine.contacts.objective.ContactObjective` evaluated fast.

Every distinct :class:`~engine.contacts.objective.RegionPair` of the objective gets one row of padded
index tensors (the fixed vertex subsample of each side, padded to the longest subsample with
a mask). Per iteration :func:`pair_distances` gathers the posed vertices of all pairs at once
and takes one batched ``cdist`` + masked minimum: one distance per pair, whatever the number of
samples, assignments and person orders that use it. The objective's value

    sum_t weight_t * min_options sum_rows min_alternatives d(pair)

is then a few gathers and reductions over small precomputed index tensors
(:func:`term_values`).

Robust LMM rows. A term may carry a saturation scale s > 0 (the LMM's terms do, see
:func:`build_contact_index`): its pair distances d then enter the same min/sum/min structure
as ``rho(d) = s * (1 - exp(-d / s))`` instead of d. rho is monotone, so the min over
alternatives and over options still picks the same assignment a plain distance would, and
rho(0) = 0 with slope 1 there, so a row close to satisfied pulls exactly as before. Its pull
(the slope exp(-d / s)) fades with distance: a row 3 s away pulls with 5% of the force. Why:
a sample's wrong row (a contact the image does not show) is usually far from satisfied, and
with a plain distance each such row pulls with constant force however absurd it is, so the
few wrong samples (weight 1/N each) keep dragging the body away from the pose that the
majority of samples agree on (the "feet together" drift). The value saturates at s, so a
far wrong row also adds at most s to its sample's loss. Ground pairs use the height of the region's lowest vertex above the
floor plane, as an absolute value: sinking into the floor is as wrong as floating above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import torch

from engine.contacts.objective import ContactObjective, RegionPair

# Padding distance for masked entries: large, finite (inf * 0 would give NaN in a sum).
_FAR = 1.0e4


class RegionVertices(Protocol):
    """What the losses need of a body's region map (``engine.body.region_map``)."""

    def subsample(self, region: str) -> np.ndarray:  # (K,) vertex ids of the fixed subsample
        ...

    def vertex_ids(self, region: str) -> np.ndarray:  # every vertex id of the region
        ...


@dataclass(frozen=True)
class ContactIndex:
    """Precomputed index tensors of one objective.

    Vertex indices point into the *needed-vertex list* of each person (see
    :class:`~engine.refine.losses.inputs.VertexSelection`), not into the full mesh.

    pairs: the distinct pairs, in order (P of them).
    person_a, person_b: (P,) long.
    vertex_a, vertex_b: (P, K) long, padded; mask_a, mask_b: (P, K) bool.
    is_ground: (P,) bool.
    row_pairs: (R, A) long into pairs; row_mask: (R, A) bool.
    option_rows: (O, W) long into rows; option_mask: (O, W) bool.
    term_options: (T, Q) long into options; term_mask: (T, Q) bool.
    term_weights: (T,) float.
    term_saturation: (T,) float: 0 for a plain distance, s > 0 for the saturating rho.
    touch_m: distance at which two regions count as touching in the loss (see contact_value).
    """

    pairs: tuple[RegionPair, ...]
    person_a: torch.Tensor
    person_b: torch.Tensor
    vertex_a: torch.Tensor
    vertex_b: torch.Tensor
    mask_a: torch.Tensor
    mask_b: torch.Tensor
    is_ground: torch.Tensor
    row_pairs: torch.Tensor
    row_mask: torch.Tensor
    option_rows: torch.Tensor
    option_mask: torch.Tensor
    term_options: torch.Tensor
    term_mask: torch.Tensor
    term_weights: torch.Tensor
    term_saturation: torch.Tensor | None = None
    touch_m: float = 0.0

    @property
    def num_terms(self) -> int:
        return int(self.term_weights.shape[0])


def _pad(rows: Sequence[Sequence[int]], fill: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    width = max((len(r) for r in rows), default=0)
    width = max(width, 1)
    values = torch.full((len(rows), width), fill, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        values[i, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
        mask[i, : len(row)] = True
    return values, mask


def needed_contact_vertices(objective: ContactObjective, regions: RegionVertices, num_people: int) -> list[np.ndarray]:
    """Per person, the sorted mesh vertex ids the contact pairs of ``objective`` read."""
    needed: list[set[int]] = [set() for _ in range(num_people)]
    for pair in objective.pairs():
        if pair.person_a >= num_people or pair.person_b >= num_people:
            raise ValueError(f"contact pair {pair.label()} names a person that is not in the job")
        needed[pair.person_a].update(int(v) for v in regions.subsample(pair.region_a))
        if not pair.is_ground:
            needed[pair.person_b].update(int(v) for v in regions.subsample(pair.region_b))
    return [np.array(sorted(s), dtype=np.int64) for s in needed]


def build_contact_index(
    objective: ContactObjective,
    regions: RegionVertices,
    needed_vertices: Sequence[np.ndarray],
    lmm_saturation_m: float | None = None,
    touch_m: float = 0.0,
) -> ContactIndex:
    """Turn ``objective`` into padded index tensors.

    lmm_saturation_m: when given, the saturation scale s of the terms whose source is the
        LMM (see the module docstring); artists' explicit terms always use the plain distance.

    needed_vertices: per person, the sorted (V'_p,) mesh vertex ids that the posed-vertex
        tensor of that person holds (they must include every subsample the pairs use).
    touch_m: see ContactIndex.touch_m (the engine's problems use TOUCH_M).
    """
    pairs = objective.pairs()
    pair_slot = {pair: i for i, pair in enumerate(pairs)}

    def local(person: int, region: str) -> list[int]:
        ids = np.asarray(regions.subsample(region), dtype=np.int64)
        table = needed_vertices[person]
        where = np.searchsorted(table, ids)
        if np.any(where >= len(table)) or np.any(table[np.minimum(where, len(table) - 1)] != ids):
            raise ValueError(f"region {region!r} of person {person + 1} is not in the skinned vertex set")
        return where.tolist()

    side_a = [local(p.person_a, p.region_a) for p in pairs]
    side_b = [local(p.person_a, p.region_a) if p.is_ground else local(p.person_b, p.region_b) for p in pairs]
    vertex_a, mask_a = _pad(side_a)
    vertex_b, mask_b = _pad(side_b)

    row_slot: dict[tuple[RegionPair, ...], int] = {}
    option_slot: dict[tuple[int, ...], int] = {}
    term_options: list[list[int]] = []
    for term in objective.terms:
        options_of_term: list[int] = []
        for option in term.options:
            rows = tuple(row_slot.setdefault(tuple(sorted(row)), len(row_slot)) for row in option)
            options_of_term.append(option_slot.setdefault(rows, len(option_slot)))
        term_options.append(options_of_term)
    rows_sorted = sorted(row_slot, key=row_slot.get)  # type: ignore[arg-type]
    options_sorted = sorted(option_slot, key=option_slot.get)  # type: ignore[arg-type]
    row_pairs, row_mask = _pad([[pair_slot[p] for p in row] for row in rows_sorted])
    option_rows, option_mask = _pad([list(rows) for rows in options_sorted])
    term_index, term_mask = _pad(term_options)
    return ContactIndex(
        pairs=pairs,
        person_a=torch.tensor([p.person_a for p in pairs], dtype=torch.long),
        person_b=torch.tensor([p.person_b for p in pairs], dtype=torch.long),
        vertex_a=vertex_a,
        vertex_b=vertex_b,
        mask_a=mask_a,
        mask_b=mask_b,
        is_ground=torch.tensor([p.is_ground for p in pairs], dtype=torch.bool),
        row_pairs=row_pairs,
        row_mask=row_mask,
        option_rows=option_rows,
        option_mask=option_mask,
        term_options=term_index,
        term_mask=term_mask,
        term_weights=torch.tensor([t.weight for t in objective.terms], dtype=torch.float32),
        touch_m=float(touch_m),
        term_saturation=torch.tensor(
            [lmm_saturation_m if (lmm_saturation_m and t.source == "lmm") else 0.0 for t in objective.terms],
            dtype=torch.float32,
        ),
    )


def _flat_rows(index: ContactIndex, count: int) -> tuple[torch.Tensor, ...]:
    """(P, K) rows of each pair's two sides into the (N * V', 3) flattened posed vertices for
    V' = ``count``, the same flattened to (P K,), the (P, K) padding masks of both sides and
    the (P,) pair numbers (made once per vertex count: the optimizer asks for the same every
    step)."""
    cached = index.__dict__.get("_flat_rows")
    if cached is None or cached[0] != count:
        rows_a = index.person_a[:, None] * count + index.vertex_a
        rows_b = index.person_b[:, None] * count + index.vertex_b
        pairs = torch.arange(len(index.pairs))
        cached = (count, rows_a, rows_b, rows_a.reshape(-1), rows_b.reshape(-1), ~index.mask_a, ~index.mask_b, pairs)
        object.__setattr__(index, "_flat_rows", cached)
    return cached[1:]


# Two regions this close (metres) touch: the engine's problems pull no closer
# (ContactIndex.touch_m). Why: the regions are subsamples a few millimetres apart, and a pull
# down to zero drew a hand's vertex in between a knee's sample vertices, sinking the hand into
# the knee against the interpenetration term; 4 mm between subsamples is well within the
# 1 cm a contact is judged by on the full regions.
TOUCH_M = 0.004


def pair_distances(index: ContactIndex, vertices: torch.Tensor, floor_height: float) -> torch.Tensor:
    """Minimum distance of every pair, in one batched computation.

    vertices: (N, V', 3) posed needed vertices of the N people (world frame, Z up).
    Returns (P,) metres.

    The nearest vertex pair of every region pair is found without gradient (one batched
    product and a min-reduction); only those P distances are then recomputed with gradient
    from the two vertices themselves. That is exactly the (sub)gradient of the minimum,
    without back-propagating through the (P, K, K) distance matrix or the (P, K, 3) gathers.
    """
    if not index.pairs:
        return vertices.new_zeros(0)
    rows_a, rows_b, flat_a, flat_b, padding_a, padding_b, pair = _flat_rows(index, vertices.shape[1])
    with torch.no_grad():
        # One index_select of flat rows is much cheaper than a two-tensor advanced index.
        flat = vertices.detach().reshape(-1, 3)
        points_a = flat.index_select(0, flat_a).reshape(*rows_a.shape, 3)  # (P, K, 3)
        points_b = flat.index_select(0, flat_b).reshape(*rows_b.shape, 3)
        heights = points_a[..., 2].masked_fill(padding_a, _FAR)
        # Squared distances as |a - c|^2 + (|b - c|^2 - 2 (a - c).(b - c)) about each pair's
        # centre c (float32 rounding of small offsets), the bracket as one batched product of
        # [-2 (a - c), 1] and [b - c, |b - c|^2]: the (P, K, K) matrix is written once and read
        # once by a min-reduction (a min with indices or an argmin over it is not vectorised).
        centre = points_a[:, :1]
        points_a = points_a - centre
        points_b = points_b - centre
        norm_a = (points_a * points_a).sum(-1).masked_fill_(padding_a, _FAR)  # (P, K)
        norm_b = (points_b * points_b).sum(-1).masked_fill_(padding_b, _FAR)
        left = torch.cat([points_a * -2.0, torch.ones_like(norm_a)[..., None]], dim=-1)
        right = torch.cat([points_b, norm_b[..., None]], dim=-1)
        row = (torch.bmm(left, right.transpose(1, 2)).amin(dim=2) + norm_a).argmin(dim=1)  # (P,) slot on side a
        gap = points_b - points_a[pair, row][:, None]
        column = (gap * gap).sum(-1).masked_fill_(padding_b, _FAR).argmin(dim=1)  # (P,) slot on side b
        nearest_a = rows_a[pair, row]
        nearest_b = rows_b[pair, column]
        lowest = rows_a[pair, heights.argmin(dim=1)]
        # Ground pairs measure their lowest vertex against the floor; others a vertex pair.
        chosen = torch.cat([torch.where(index.is_ground, lowest, nearest_a), nearest_b])
    points = vertices.reshape(-1, 3).index_select(0, chosen)  # (2P, 3)
    points, other = points[: len(index.pairs)], points[len(index.pairs) :]
    gap = points - other
    nearest = torch.sqrt((gap * gap).sum(-1) + 1e-12)
    heights = (points[:, 2] - floor_height).abs()
    return torch.where(index.is_ground, heights, nearest)


def saturate(distances: torch.Tensor, scale_m: float) -> torch.Tensor:
    """rho(d) = s (1 - exp(-d / s)) (see the module docstring). distances: any shape."""
    return scale_m * -torch.expm1(-distances / scale_m)


def _options(index: ContactIndex, distances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(P,) pair distances -> the nearest alternative of each row, (R,) slots into
    ``index.row_pairs``, and each term's options' values, (T, Q) (padding _FAR): the sum
    over an option's rows of their nearest alternative."""
    rows = distances[index.row_pairs].masked_fill(~index.row_mask, _FAR)  # (R, A)
    row_values, alternative = rows.min(dim=1)
    options = (row_values[index.option_rows] * index.option_mask).sum(dim=1)  # (O,)
    return alternative, options[index.term_options].masked_fill(~index.term_mask, _FAR)


def term_values(index: ContactIndex, distances: torch.Tensor) -> torch.Tensor:
    """(P,) pair distances -> (T,) unweighted term values: min over options of the sum over
    rows of the min over alternatives."""
    return _options(index, distances)[1].amin(dim=1)


def pair_coefficients(index: ContactIndex, distances: torch.Tensor, term_weights: torch.Tensor) -> torch.Tensor:
    """(P,) how often, weighted, each pair is the one that counts: for every term its cheapest
    option (term_values), in each of that option's rows its nearest alternative; the term's
    weight (``term_weights`` (T,)) goes to that pair. So sum(coefficients * distances) is
    sum_t term_weights_t * term_values_t, and its gradient is the objective's (sub)gradient.
    distances: (P,) without gradient."""
    alternative, options = _options(index, distances)
    row_pair = index.row_pairs.gather(1, alternative[:, None])[:, 0]  # (R,)
    option = index.term_options.gather(1, options.argmin(dim=1, keepdim=True))[:, 0]  # (T,) each term's cheapest
    pairs = row_pair[index.option_rows[option]]  # (T, W)
    weights = term_weights[:, None].to(distances.dtype) * index.option_mask[option]
    return distances.new_zeros(len(index.pairs)).index_add_(0, pairs.reshape(-1), weights.reshape(-1))


def contact_value(index: ContactIndex, vertices: torch.Tensor, floor_height: float) -> torch.Tensor:
    """The objective's weighted value (scalar); zero for an objective without terms.

    Which option of each term and which alternative of each row count is decided without
    gradient (pair_coefficients); the value is then a weighted sum of the pair distances, so
    the backward pass runs through P distances and not through the min/sum/min structure."""
    if index.num_terms == 0:
        return vertices.new_zeros(())
    distances = pair_distances(index, vertices, floor_height)
    if index.touch_m > 0.0:
        distances = (distances - index.touch_m).clamp(min=0.0)
    plain_weights, robust_weights, scale = _term_weight_split(index)
    value = None
    if plain_weights is not None:
        with torch.no_grad():
            coefficients = pair_coefficients(index, distances.detach(), plain_weights.to(distances.dtype))
        value = (coefficients * distances).sum()
    if robust_weights is not None:
        robust = saturate(distances, scale)
        with torch.no_grad():
            robust_coefficients = pair_coefficients(index, robust.detach(), robust_weights.to(distances.dtype))
        robust_value = (robust_coefficients * robust).sum()
        value = robust_value if value is None else value + robust_value
    return value


def _term_weight_split(index: ContactIndex) -> tuple[torch.Tensor | None, torch.Tensor | None, float]:
    """The term weights of the plain terms and of the saturated ones (0 for the others; None
    where there are none of that kind), and the saturation scale (every saturated term of one
    objective shares one, see build_contact_index). Made once per index."""
    cached = index.__dict__.get("_weight_split")
    if cached is None:
        weights, scales = index.term_weights, index.term_saturation
        if scales is None or not bool((scales > 0).any()):
            cached = (weights, None, 0.0)
        else:
            saturated = scales > 0
            plain = None if bool(saturated.all()) else torch.where(saturated, 0.0, weights)
            cached = (plain, torch.where(saturated, weights, 0.0), float(scales.max()))
        object.__setattr__(index, "_weight_split", cached)
    return cached
