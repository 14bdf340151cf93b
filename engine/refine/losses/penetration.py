"""Interpenetration: signed distance of surface vertices to per-bone capsule proxies.

Each main bone gets a capsule (a segment plus a radius) fitted once to the rest-pose vertices
it dominates: the segment runs along those vertices' longest principal axis over the
5th..95th percentile of their extent, and the radius is the
25th percentile of their distance to the segment, so the capsule sits just *inside* the skin.
Capsules move rigidly with their joint's posed frame.

The term penalises ``relu(depth - tolerance)^2`` where ``depth = radius - distance(vertex,
segment)``, summed over vertices and capsules, for
* vertices of one person against the capsules of the other person, and
* vertices of one person against the capsules of the same person's *non-adjacent* bones
  (not within ``ADJACENT_HOPS`` steps in the kinematic tree of the vertex's own bone, and not
  already inside or near that capsule in the rest pose), counting only how much deeper a
  vertex sinks than in the initial pose (see :func:`initial_self_allowance`).

Why it does not fight the contact terms: a contact is satisfied when the two regions' nearest
vertices meet, i.e. at skin contact. Because the capsule is inside the skin (25th-percentile
radius) and the penalty starts only ``tolerance`` (5 mm) beyond the capsule surface, skin
contact has depth <= ~0 and costs nothing; only a vertex pushed several millimetres through
the other surface is pushed back. The quadratic onset keeps the gradient continuous, so
the optimizer settles at contact instead of oscillating around it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Sequence

import math

import numpy as np
import torch

TOLERANCE_M = 0.005
# Depth normalisation: 5 cm beyond the tolerance costs 1 per vertex pair. Why not stiffer: a
# limb reaching a contact crosses several millimetres per optimizer step, and a penalty that
# jumps from nothing to many times the contact's pull in one step (1 cm here once cost 100x
# more) makes Adam reverse and then crawl for the next twenty steps, which the early-stop
# slope reads as convergence: the stage ends with the contact open. At this scale a few
# vertices a centimetre deep still push back harder than a contact pulls.
DEPTH_SCALE_M = 0.05
# Within one body, bones this close in the kinematic tree are not tested against each other.
# 5, not 3: an upper arm is 4-5 steps from the chest (spine02), whose capsule reaches into the
# armpit; arms brought forward into a hug sank 2 cm into it by the proxies, the penalty
# outweighed the contact and the stage stopped near the initial pose (held-out scenes). A
# forearm or hand is 6 or more steps from the trunk and still tested.
ADJACENT_HOPS = 5
REST_NEAR_M = 0.03
MIN_CAPSULE_VERTICES = 30
# Percentile of the fitted vertices' distances to the segment used as the radius: 25 keeps
# the capsule inside the skin (a median radius was tried and fought the contacts: the hug and
# foot-on-thigh benchmark cases stayed 2-10 cm open).
RADIUS_PERCENTILE = 25


@dataclass(frozen=True)
class Capsules:
    """Capsule proxies of one body, in each bone's rest frame ... expressed in the model frame.

    bones: (C,) long joint index of each capsule.
    start_rest, end_rest: (C, 3) segment ends in the model frame, rest pose.
    radius: (C,) metres.
    rest_frames_inverse: (C, 4, 4) inverse rest frames of the capsules' joints.

    Capsules of several people of one body model (:meth:`stack_people`) carry a leading person
    dimension on every field but ``bones``: each person's capsules fit their own shape.
    """

    bones: torch.Tensor
    start_rest: torch.Tensor
    end_rest: torch.Tensor
    radius: torch.Tensor
    rest_frames_inverse: torch.Tensor

    @cached_property
    def ends_in_bone_frames(self) -> torch.Tensor:
        """(C, 4, 2) homogeneous start and end of each capsule in its bone's rest frame, so
        that a posed frame's top three rows times them give both posed ends in one product."""
        ends = torch.stack([self.start_rest, self.end_rest], dim=-1)  # ([N,] C, 3, 2)
        homogeneous_ends = torch.cat([ends, torch.ones_like(ends[..., :1, :])], dim=-2)
        return self.rest_frames_inverse @ homogeneous_ends

    @property
    def per_person(self) -> bool:
        return self.radius.dim() == 2

    def person(self, index: int) -> "Capsules":
        """One person's capsules (the same capsules when they are one body's)."""
        if not self.per_person:
            return self
        return Capsules(self.bones, self.start_rest[index], self.end_rest[index], self.radius[index], self.rest_frames_inverse[index])

    def person_radius(self, num_people: int) -> torch.Tensor:
        """(N, C) radius of every capsule of every person."""
        return self.radius if self.per_person else self.radius[None].expand(num_people, -1)

    @staticmethod
    def stack_people(capsules: Sequence["Capsules"]) -> "Capsules":
        """The capsules of each person (each fitted to their own shape) as one record."""
        bones = capsules[0].bones
        if any(not torch.equal(c.bones, bones) for c in capsules):
            raise ValueError("every person's capsules must be on the same bones")
        return Capsules(
            bones,
            torch.stack([c.start_rest for c in capsules]),
            torch.stack([c.end_rest for c in capsules]),
            torch.stack([c.radius for c in capsules]),
            torch.stack([c.rest_frames_inverse for c in capsules]),
        )


@dataclass(frozen=True)
class PenetrationSetup:
    """What the penetration term needs, built once per job.

    capsules: the body's capsules (shared by every person: one body model).
    vertex_slots: (M,) long indices into the posed needed-vertex tensor of the vertices tested.
    self_mask: (M, C) bool: True where a vertex of a person is tested against a capsule of the
        same person.
    other_mask: (M, C) bool: True where a vertex is tested against a capsule of another
        person (None: every pair).
    surface: the mesh-based surface test (see "surface (mesh) test" below), or None.
    self_allowance: (N, M, C) metres each vertex may sit inside a capsule of its own person
        beyond the tolerance before it costs anything: its depth there in the artist's
        initial pose (see :func:`initial_self_allowance`), or None for none.
    """

    capsules: Capsules
    vertex_slots: torch.Tensor
    self_mask: torch.Tensor
    surface: "SurfaceSetup | None" = None
    other_mask: torch.Tensor | None = None
    self_allowance: torch.Tensor | None = None

    def person_masks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, C) bool masks of the tested (vertex, capsule) pairs within one body and across
        two bodies."""
        other = self.other_mask if self.other_mask is not None else torch.ones_like(self.self_mask)
        return self.self_mask, other

    def cluster_masks(self, members: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q, C) bool: some vertex of the cluster is tested against the capsule, within one
        body and across two (computed once per clustering)."""
        cached = self.__dict__.get("_cluster_masks")
        if cached is None or cached[0] is not members:
            within, across = self.person_masks()
            allowed = tuple((m[members] & mask[:, :, None]).any(dim=1) for m in (within, across))
            cached = (members, allowed)
            object.__setattr__(self, "_cluster_masks", cached)
        return cached[1]


def _tree_distance(parents: Sequence[int], a: int, b: int) -> int:
    def chain(j: int) -> list[int]:
        out = [j]
        while parents[out[-1]] >= 0:
            out.append(parents[out[-1]])
        return out

    chain_a, chain_b = chain(a), chain(b)
    common = set(chain_a) & set(chain_b)
    return min(chain_a.index(c) + chain_b.index(c) for c in common) if common else 10**6


def proxy_bones(dominant: np.ndarray, parents: Sequence[int], bones: Sequence[int]) -> np.ndarray:
    """Map each vertex's dominant bone to itself or its nearest ancestor in ``bones``."""
    allowed = set(int(b) for b in bones)
    lookup = {}
    for joint in range(len(parents)):
        j = joint
        while j >= 0 and j not in allowed:
            j = parents[j]
        lookup[joint] = j
    return np.array([lookup[int(d)] for d in dominant], dtype=np.int64)


def fit_capsules(
    rest_vertices: np.ndarray,
    skinning_weights: np.ndarray,
    rest_frames: np.ndarray,
    parents: Sequence[int],
    bones: Sequence[int],
) -> Capsules:
    """Fit one capsule per bone in ``bones`` that dominates enough vertices.

    rest_vertices: (V, 3) model frame; skinning_weights: (V, J); rest_frames: (J, 4, 4).
    A vertex dominated by a bone outside ``bones`` (a finger, a toe) counts for its nearest
    ancestor in ``bones``, so the wrist's capsule covers the hand and the foot's the toes.
    """
    dominant = proxy_bones(skinning_weights.argmax(1), parents, bones)
    origins = rest_frames[:, :3, 3]
    children: dict[int, list[int]] = {}
    for j, parent in enumerate(parents):
        if parent >= 0:
            children.setdefault(parent, []).append(j)
    kept, starts, ends, radii = [], [], [], []
    for bone in bones:
        points = rest_vertices[dominant == bone]
        if len(points) < MIN_CAPSULE_VERTICES:
            continue
        # The longest principal axis: a limb's length, the head's height, and for a slice
        # of the torso its width (a sideways capsule as thick as the torso is deep).
        centred = points - points.mean(0)
        direction = np.linalg.svd(centred, full_matrices=False)[2][0]
        direction = direction / np.linalg.norm(direction)
        along = centred @ direction
        low, high = np.percentile(along, [5, 95])
        start = points.mean(0) + low * direction
        end = points.mean(0) + max(high, low + 1e-3) * direction
        t = np.clip(((points - start) @ direction) / (np.linalg.norm(end - start)), 0.0, 1.0)
        nearest = start + t[:, None] * (end - start)
        radius = float(np.percentile(np.linalg.norm(points - nearest, axis=1), RADIUS_PERCENTILE))
        kept.append(bone)
        starts.append(start)
        ends.append(end)
        radii.append(radius)
    frames = rest_frames[kept]
    return Capsules(
        bones=torch.tensor(kept, dtype=torch.long),
        start_rest=torch.tensor(np.array(starts), dtype=torch.float32),
        end_rest=torch.tensor(np.array(ends), dtype=torch.float32),
        radius=torch.tensor(radii, dtype=torch.float32),
        rest_frames_inverse=torch.tensor(np.linalg.inv(frames), dtype=torch.float32),
    )


def build_penetration_setup(
    capsules: Capsules,
    rest_vertices: np.ndarray,
    skinning_weights: np.ndarray,
    parents: Sequence[int],
    tested_vertices: np.ndarray,
    needed_vertices: np.ndarray,
) -> PenetrationSetup:
    """tested_vertices: mesh ids to test (a subset of the sorted ``needed_vertices``).
    ``rest_vertices`` are of the shape of ``capsules`` (of the first person's, when the
    capsules are per person: which pairs are tested is decided on one rest body)."""
    slots = np.searchsorted(needed_vertices, tested_vertices)
    dominant = proxy_bones(skinning_weights.argmax(1)[tested_vertices], parents, capsules.bones.tolist())
    points = torch.tensor(rest_vertices[tested_vertices], dtype=torch.float32)
    rest = capsules.person(0)
    depth = signed_depth(points[None], rest.start_rest[None], rest.end_rest[None], rest.radius[None])[0]
    near_at_rest = (depth > -REST_NEAR_M).numpy()
    bones = capsules.bones.tolist()
    hop_near = np.array(
        [[_tree_distance(parents, int(d), b) <= ADJACENT_HOPS for b in bones] for d in np.unique(dominant)]
    )
    lookup = {int(d): i for i, d in enumerate(np.unique(dominant))}
    adjacent = hop_near[[lookup[int(d)] for d in dominant]]
    self_mask = ~(adjacent | near_at_rest)
    return PenetrationSetup(
        capsules=capsules,
        vertex_slots=torch.tensor(slots, dtype=torch.long),
        self_mask=torch.tensor(self_mask, dtype=torch.bool),
    )


def signed_depth(points: torch.Tensor, start: torch.Tensor, end: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Depth of points inside capsules (positive inside).

    points: (N, M, 3); start, end: (N, C, 3); radius: (N, C) -> (N, M, C) metres.
    """
    axis = end - start  # (N, C, 3)
    rel = points[:, :, None, :] - start[:, None, :, :]  # (N, M, C, 3)
    t = ((rel * axis[:, None]).sum(-1) / (axis * axis).sum(-1)[:, None]).clamp(0.0, 1.0)
    offset = rel - t[..., None] * axis[:, None]
    distance = torch.sqrt((offset * offset).sum(-1) + 1e-12)
    return radius[:, None, :] - distance


def _cluster_spheres(grouped: torch.Tensor, member_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounding spheres of posed clusters: grouped (N, Q, K, 3) member positions, member_mask
    (Q, K) -> centres (N, Q, 3) and radii (N, Q) (padding members left out)."""
    weight = member_mask.to(grouped.dtype)[None, :, :, None]
    centre = (grouped * weight).sum(2) / weight.sum(2)
    radius = (grouped - centre[:, :, None]).norm(dim=-1).masked_fill(~member_mask, 0.0).amax(dim=2)
    return centre, radius


def _paired_depth(points: torch.Tensor, start: torch.Tensor, end: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Depth of point k in capsule k. points, start, end: (..., 3); radius: (...) -> (...)
    (broadcasting)."""
    axis = end - start
    rel = points - start
    t = ((rel * axis).sum(-1) / (axis * axis).sum(-1)).clamp(0.0, 1.0)
    offset = rel - t[..., None] * axis
    return radius - torch.sqrt((offset * offset).sum(-1) + 1e-12)


def posed_capsule_ends(capsules: Capsules, joint_frames: torch.Tensor) -> torch.Tensor:
    """joint_frames: (N, J, 4, 4) posed world frames -> (N, C, 2, 3) each capsule's start and end."""
    local = capsules.ends_in_bone_frames.to(joint_frames.dtype)
    return (joint_frames[:, capsules.bones, :3, :] @ local).transpose(-1, -2)


def posed_capsules(capsules: Capsules, joint_frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """joint_frames: (N, J, 4, 4) posed world frames -> (N, C, 3) starts and ends."""
    ends = posed_capsule_ends(capsules, joint_frames)
    return ends[:, :, 0], ends[:, :, 1]


def penetration_depths(setup: PenetrationSetup, vertices: torch.Tensor, joint_frames: torch.Tensor) -> torch.Tensor:
    """Depth of every tested vertex in every relevant capsule, 0 where the pair is not tested.

    vertices: (N, V', 3) posed needed vertices; joint_frames: (N, J, 4, 4).
    Returns (N_vertex_person, N_capsule_person, M, C) metres.
    """
    num_people = vertices.shape[0]
    points = vertices[:, setup.vertex_slots]  # (N, M, 3)
    start, end = posed_capsules(setup.capsules, joint_frames)
    radius = setup.capsules.person_radius(num_people).to(vertices.dtype)
    within, across = setup.person_masks()
    rows = []
    for a in range(num_people):
        cols = []
        for b in range(num_people):
            depth = signed_depth(points[a : a + 1], start[b : b + 1], end[b : b + 1], radius[b : b + 1])[0]
            depth = depth.masked_fill(~(within if a == b else across), -1.0)
            cols.append(depth)
        rows.append(torch.stack(cols))
    return torch.stack(rows)


def initial_self_allowance(setup: PenetrationSetup, vertices: torch.Tensor, joint_frames: torch.Tensor) -> torch.Tensor:
    """(N, M, C) depth of each tested vertex beyond the tolerance in each capsule of its own
    person, 0 where it is not deeper or the pair is not tested, for the initial pose.

    Why: within one body a capsule is only a proxy. A sideways chest capsule reaches into the
    armpit, so an upper arm lowered against the ribs, as in most standing poses, already sits
    a centimetre or two inside it; penalising that pushes the arm away from the body for the
    whole run and moves the pose away from the artist's (and, in the benchmark, from the
    ground truth). The artist's own self-contact is kept as it is: only sinking deeper than
    in the initial pose costs anything.

    vertices: (N, V', 3) the initial pose's needed vertices; joint_frames: (N, J, 4, 4)."""
    with torch.no_grad():
        depths = penetration_depths(setup, vertices, joint_frames)  # (N, N, M, C)
        people = torch.arange(vertices.shape[0])
        own = depths[people, people]  # (N, M, C)
        return (own - TOLERANCE_M).clamp(min=0.0).masked_fill(~setup.self_mask, 0.0)


# Pairs this much short of the tolerance are kept as candidates between refreshes: more than
# a surface moves in a few optimizer steps.
CANDIDATE_MARGIN_M = 0.03


def penetration_candidates(setup: PenetrationSetup, vertices: torch.Tensor, joint_frames: torch.Tensor) -> torch.Tensor:
    """(K, 4) long rows (vertex person, capsule person, vertex, capsule) of the pairs within
    ``CANDIDATE_MARGIN_M`` of the tolerance (no gradient).

    With the surface test's clusters (``setup.surface.cluster_members``, over the same tested
    vertices) a cluster is compared vertex by vertex only with the capsules that its posed
    bounding sphere comes near: no vertex of the cluster can be deeper in a capsule than the
    sphere's centre is plus the sphere's radius."""
    with torch.no_grad():
        surface = setup.surface
        if surface is None or surface.cluster_members is None:
            depths = _approximate_depths(setup, vertices, joint_frames)
            return (depths > TOLERANCE_M - CANDIDATE_MARGIN_M).nonzero()
        members, member_mask = surface.clusters[:2]
        num_people = vertices.shape[0]
        origin = joint_frames[:, :1, :3, 3].mean(0, keepdim=True)  # (1, 1, 3)
        points = (vertices[:, setup.vertex_slots] - origin)[:, members]  # (N, Q, K, 3)
        centre, spread = _cluster_spheres(points, member_mask)  # (N, Q, 3), (N, Q)
        start, end = posed_capsules(setup.capsules, joint_frames)  # (N, C, 3)
        start, end = start - origin, end - origin
        radius = setup.capsules.person_radius(num_people).to(vertices.dtype)  # (N, C)
        threshold = TOLERANCE_M - CANDIDATE_MARGIN_M
        # (vertex person, cluster, capsule person, capsule) whose bound reaches the threshold
        # (the products' rounding, well under a millimetre, is covered by a millimetre's slack).
        bound = _depths_by_products(centre, start, end, radius) + spread[:, None, :, None] + 1e-3  # (N, N, Q, C)
        same_person = torch.eye(num_people, dtype=torch.bool)[:, :, None, None]
        within, across = setup.cluster_masks(members, member_mask)
        bound = bound.masked_fill(torch.where(same_person, ~within, ~across), -1.0)
        person_v, person_c, cluster, capsule = (bound > threshold).nonzero(as_tuple=True)
        if len(cluster) == 0:
            return torch.zeros(0, 4, dtype=torch.long)
        depth = _paired_depth(
            points[person_v, cluster],  # (P, K, 3)
            start[person_c, capsule][:, None],
            end[person_c, capsule][:, None],
            radius[person_c, capsule][:, None],
        )  # (P, K)
        ids = members[cluster]  # (P, K)
        valid = member_mask[cluster] & (depth > threshold)
        within, across = setup.person_masks()
        valid &= torch.where((person_v == person_c)[:, None], within[ids, capsule[:, None]], across[ids, capsule[:, None]])
        rows = valid.nonzero(as_tuple=True)
        return torch.stack([person_v[rows[0]], person_c[rows[0]], ids[rows], capsule[rows[0]]], 1)


def _approximate_depths(setup: PenetrationSetup, vertices: torch.Tensor, joint_frames: torch.Tensor) -> torch.Tensor:
    """:func:`penetration_depths` from dot products only (see :func:`_depths_by_products`),
    (N, N, M, C), -1 where a vertex is not tested against a capsule of its own body."""
    centre = joint_frames[:, :1, :3, 3].mean(0, keepdim=True)  # (1, 1, 3)
    start, end = posed_capsules(setup.capsules, joint_frames)
    num_people = vertices.shape[0]
    depth = _depths_by_products(
        vertices[:, setup.vertex_slots] - centre, start - centre, end - centre, setup.capsules.person_radius(num_people).to(vertices.dtype)
    )
    same_person = torch.eye(num_people, dtype=torch.bool)[:, :, None, None]
    within, across = setup.person_masks()
    return depth.masked_fill_(torch.where(same_person, ~within, ~across), -1.0)


def _depths_by_products(points: torch.Tensor, start: torch.Tensor, end: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Depth of every point of every person in every capsule of every person: points (N, M, 3),
    start, end (N, C, 3), radius (N, C) -> (N_points, N_capsules, M, C).

    Every (point person, capsule person) combination is a few batched products over (M, C),
    never an (M, C, 3) tensor. Distances are exact up to float32 rounding of the expanded
    squares; with coordinates about the people's mean root position that is well under a
    millimetre: enough to pick candidates with a centimetres margin."""
    num_people, count, capsules = points.shape[0], points.shape[1], start.shape[1]
    points = points.repeat_interleave(num_people, dim=0)  # (N * N, M, 3): point person major
    start = start.repeat(num_people, 1, 1)  # (N * N, C, 3)
    axis = end.repeat(num_people, 1, 1) - start
    axis_sq = (axis * axis).sum(-1)[:, None, :]  # (NN, 1, C)
    start_along = (start * axis).sum(-1)[:, None, :]
    along = torch.bmm(points, axis.transpose(1, 2)) - start_along  # (rel . axis): (NN, M, C)
    t = (along / axis_sq).clamp_(0.0, 1.0)
    rel_sq = torch.baddbmm((start * start).sum(-1)[:, None, :], points, start.transpose(1, 2), alpha=-2.0)
    rel_sq += (points * points).sum(-1, keepdim=True)
    offset_sq = rel_sq - t * (2.0 * along - t * axis_sq)
    # Rows are (point person, capsule person) with the capsule person minor, as start's.
    depth = radius.repeat(num_people, 1)[:, None, :] - offset_sq.clamp_(min=0.0).sqrt_()
    return depth.reshape(num_people, num_people, count, capsules)


@dataclass(frozen=True)
class CapsuleRows:
    """Vertex-capsule candidate rows made ready for evaluation once per search, so that each
    step reads them with two gathers.

    candidates: (K, 4) long rows (vertex person, capsule person, vertex, capsule), see
        penetration_candidates;
    points: (K,) long rows into the flattened (N V', 3) posed needed vertices;
    capsules: (K,) long rows into the flattened (N C, 2, 3) posed capsule ends;
    radius, onset: (K,) metres; onset is the depth where the penalty starts (the tolerance,
        plus the vertex's allowance in a capsule of its own person);
    count: V', the needed vertices per person the rows point into."""

    candidates: torch.Tensor
    points: torch.Tensor
    capsules: torch.Tensor
    radius: torch.Tensor
    onset: torch.Tensor
    count: int


def capsule_rows(setup: PenetrationSetup, candidates: torch.Tensor, count: int) -> CapsuleRows:
    """Prepare ``candidates`` (K, 4) for posed needed vertices of ``count`` (V') per person."""
    person_v, person_c, vertex, capsule = candidates.unbind(1)
    allowance = None if setup.self_allowance is None else setup.self_allowance[person_v, vertex, capsule]
    onset = _onsets(TOLERANCE_M, allowance, person_v == person_c, setup.capsules.radius.dtype)
    return CapsuleRows(
        candidates=candidates,
        points=person_v * count + setup.vertex_slots[vertex],
        capsules=person_c * len(setup.capsules.bones) + capsule,
        radius=setup.capsules.radius[person_c, capsule] if setup.capsules.per_person else setup.capsules.radius[capsule],
        onset=onset,
        count=count,
    )


def _onsets(tolerance: float, allowance: torch.Tensor | None, same_person: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(K,) depth where each candidate row's penalty starts: the tolerance, plus the row's
    self allowance (K,) where the row tests a person against their own body."""
    onset = torch.full(same_person.shape, tolerance, dtype=dtype)
    if allowance is None:
        return onset
    allowance = allowance.to(dtype)
    return onset + torch.where(same_person, allowance, torch.zeros_like(allowance))


def penetration_value(
    setup: PenetrationSetup,
    vertices: torch.Tensor,
    joint_frames: torch.Tensor,
    candidates: torch.Tensor | CapsuleRows | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scalar penalty and the maximum depth (metres, for reporting; over the candidates
    when they are given, -1 when they are none).

    candidates: (K, 4) rows or the same prepared by :func:`capsule_rows` (as the optimizer
    does once per search). Without them, all depths are first computed without gradient and
    only the pairs past the tolerance are evaluated with gradient, so the backward pass
    stays cheap."""
    deepest = None
    if candidates is None:
        with torch.no_grad():
            depths = penetration_depths(setup, vertices, joint_frames)  # (N, N, M, C)
            deepest = depths.max()
            candidates = (depths > TOLERANCE_M).nonzero()
    rows = candidates if isinstance(candidates, CapsuleRows) else capsule_rows(setup, candidates, vertices.shape[1])
    _check_count(rows.count, vertices)
    if rows.points.shape[0] == 0:
        return vertices.new_zeros(()), vertices.new_full((), -1.0) if deepest is None else deepest
    points = vertices.reshape(-1, 3).index_select(0, rows.points)  # (K, 3)
    ends = posed_capsule_ends(setup.capsules, joint_frames).reshape(-1, 2, 3).index_select(0, rows.capsules)  # (K, 2, 3)
    penalty, candidates_deepest = _CapsulePenalty.apply(points, ends, rows.radius.to(vertices.dtype), rows.onset.to(vertices.dtype))
    return penalty, candidates_deepest if deepest is None else deepest


class _CapsulePenalty(torch.autograd.Function):
    """``sum (relu(depth - onset) / DEPTH_SCALE_M)^2`` over rows of points and capsules, with
    ``depth = radius - distance(point, segment)`` (see _paired_depth), and the deepest depth;
    ends: (K, 2, 3) each row's segment start and end.
    One autograd node instead of some twenty: the gradient of the distance is the unit
    direction u from the segment's nearest point c = start + t (end - start) to the point,
    for the point, and -(1 - t) u and -t u for the segment's ends (t's own change moves c
    along the segment, orthogonal to u, or not at all where it is clamped)."""

    @staticmethod
    def forward(ctx, points, ends, radius, onset):
        start = ends[:, 0]
        axis = ends[:, 1] - start
        rel = points - start
        t = ((rel * axis).sum(-1) / (axis * axis).sum(-1)).clamp(0.0, 1.0)
        offset = rel - t[:, None] * axis
        distance = torch.sqrt((offset * offset).sum(-1) + 1e-12)
        depth = radius - distance
        excess = torch.relu(depth - onset) / DEPTH_SCALE_M
        ctx.save_for_backward(offset / distance[:, None], t, excess)
        deepest = depth.max()
        ctx.mark_non_differentiable(deepest)
        return (excess * excess).sum(), deepest

    @staticmethod
    def backward(ctx, grad_penalty, _grad_deepest):
        direction, t, excess = ctx.saved_tensors
        slope = (grad_penalty * 2.0 / DEPTH_SCALE_M) * excess  # d penalty / d depth
        along = slope[:, None] * direction
        shares = torch.stack([1.0 - t, t], dim=1)[:, :, None]  # (K, 2, 1) of the start and the end
        return -along, shares * along[:, None], None, None


class _SurfacePenalty(torch.autograd.Function):
    """``sum (relu(depth - onset) / DEPTH_SCALE_M)^2`` with ``depth = -(point - surface) . normal``
    (normals without gradient), and the deepest depth: one autograd node. ends: (K, 2, 3)
    each row's point and surface vertex."""

    @staticmethod
    def forward(ctx, ends, normals, onset):
        depth = -((ends[:, 0] - ends[:, 1]) * normals).sum(-1)
        excess = torch.relu(depth - onset) / DEPTH_SCALE_M
        ctx.save_for_backward(normals, excess)
        deepest = depth.max()
        ctx.mark_non_differentiable(deepest)
        return (excess * excess).sum(), deepest

    @staticmethod
    def backward(ctx, grad_penalty, _grad_deepest):
        normals, excess = ctx.saved_tensors
        push = ((grad_penalty * 2.0 / DEPTH_SCALE_M) * excess)[:, None] * normals
        return torch.stack([-push, push], dim=1), None, None


# ------------------------------------------------------------------ surface (mesh) test
#
# The capsules above sit inside the skin on purpose, so a hand can sink a few centimetres
# into a torso before they react. The surface test measures penetration on the mesh itself,
# the way engine.refine.metrics.max_penetration_depth does: a tested vertex x of one body, its
# nearest vertex p of the other body's tested sample and p's outward normal n give the depth
# ``-(x - p) . n`` (positive below the surface). Only depths beyond SURFACE_TOLERANCE_M are
# penalised, so skin contact (what the contact terms ask for: depth about 0) costs nothing.
# Pairs are found without gradient every few steps (nearest vertex within
# SURFACE_MAX_DISTANCE_M, beyond which the nearest vertex no longer tells inside from
# outside) and only those pairs are evaluated with gradient in between. Normals follow the
# skinning (linear blend of the bones' rotations applied to the rest normal) and carry no
# gradient: the push is along the surface normal, as a contact force is. Within one body a
# vertex only pays for sinking deeper than it sits in the initial pose (SurfaceSetup.self_allowance).
SURFACE_TOLERANCE_M = 0.003
SURFACE_MAX_DISTANCE_M = 0.06
SURFACE_CANDIDATE_MARGIN_M = 0.03
# A point whose nearest sample vertex lies far to the side of it (along the surface) is not
# measured: on a curved limb the tangent plane of a vertex that far away passes outside the
# skin, and the point would look sunk in while it only touches (l^2 / 2R: 2 mm on a thigh,
# 5 mm on a thin forearm at 2 cm, under the 3 mm tolerance on most of the body). The tested
# sample is sparse (a few centimetres between vertices); at 1.5 cm fingers of a hand round a
# waist sank 18 mm into the lower back between sample vertices unmeasured.
SURFACE_MAX_LATERAL_M = 0.02
# Within one body, only vertices at least this far apart in the rest pose are tested against
# each other (more than SURFACE_MAX_DISTANCE_M): where the skin folds (armpit, crotch, between
# the thighs) a sparse sample's nearest vertex and normal cannot tell touching from sinking in,
# and those places are never a contact the LMM asks for.
SELF_REST_FAR_M = 0.08
# Vertices per cluster of the nearest-vertex search (see surface_candidates).
SURFACE_CLUSTER_SIZE = 16
# What the search adds to the squared distance (m^2) of a vertex pair that may not be tested:
# far beyond any distance it keeps, and exact in float16 (its tables' type).
_FORBIDDEN_SQ_M2 = 32768.0
# Between two searches each point is measured against the nearest of the surface vertices
# that were at most this much farther from it than its nearest at the search (see
# surface_value). Why: the sample is sparse (a few centimetres between vertices), and a hand
# sliding along an arm to a shoulder passes several of them between two searches; measured
# against the vertex nearest at the search, whose tangent plane falls behind, its depth was
# wrong until the next search, which then made a step in the penalty and in the loss, and
# the early stop ended stage 1 with the hand 3 cm short of the shoulder. A point whose
# nearest vertex changes while both move less than half this far is still measured exactly.
SURFACE_TRACK_BAND_M = 0.03


@dataclass(frozen=True)
class SurfaceSetup:
    """The tested vertices as a surface sample.

    slots: (S,) long indices into the posed needed-vertex tensor.
    rest_normals: (S, 3) outward unit normals in the rest pose (model frame).
    skinning: (S, J) skinning weights of those vertices.
    rest_frames_inverse: (J, 4, 4) inverse rest frames of every joint.
    self_allowed: (S, S) bool: vertex i of a person may be tested against vertex k of the same
        person (their bones are not within ADJACENT_HOPS and they are SELF_REST_FAR_M apart at rest).
    cluster_members: (M, K) long sample indices of M small clusters of nearby sample vertices
        (each vertex in exactly one; rows padded with -1), see :func:`surface_clusters`; None
        makes the whole sample one cluster.
    self_allowance: (N, S) metres each sample vertex of a person may sit below that person's
        own surface beyond the tolerance before it costs anything: its depth in the initial
        pose (see :func:`initial_surface_self_allowance`), or None for none.
    """

    slots: torch.Tensor
    rest_normals: torch.Tensor
    skinning: torch.Tensor
    rest_frames_inverse: torch.Tensor
    self_allowed: torch.Tensor
    cluster_members: torch.Tensor | None = None
    self_allowance: torch.Tensor | None = None

    @property
    def clusters(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """members (M, K) long (padding points at sample 0), mask (M, K) bool,
        self_pairs (M, M) bool: cluster i of a person has some vertex that may be tested
        against some vertex of cluster j of the same person, and self_forbidden (M M, K, K)
        float16: for the pair (i, j) at row i M + j, entry (surface member, point member) is
        0 where ``self_allowed`` lets point member of cluster i be tested against surface
        member of cluster j and _FORBIDDEN_SQ_M2 elsewhere (padding included), so that a
        search masks a whole block with one addition (computed once)."""
        cached = self.__dict__.get("_clusters")
        if cached is None:
            members = self.cluster_members
            if members is None:
                members = torch.arange(len(self.slots))[None]
            mask = members >= 0
            members = members.clamp(min=0)
            num_clusters, size = members.shape
            flat = members.reshape(-1)
            blocks = self.self_allowed[flat][:, flat].reshape(num_clusters, size, num_clusters, size)
            blocks = blocks & mask[:, :, None, None] & mask[None, None, :, :]
            blocks = blocks.permute(0, 2, 3, 1)  # (point cluster, surface cluster, surface member, point member)
            self_pairs = blocks.flatten(2).any(dim=2)
            forbidden = torch.zeros(blocks.shape, dtype=torch.float16).masked_fill_(~blocks, _FORBIDDEN_SQ_M2)
            cached = (members, mask, self_pairs, forbidden.reshape(num_clusters * num_clusters, size, size))
            object.__setattr__(self, "_clusters", cached)
        return cached

    def with_self_allowance(self, allowance: torch.Tensor) -> "SurfaceSetup":
        """This setup with ``self_allowance`` set, keeping the cluster tables already built
        (they depend only on the sample, and take tens of milliseconds to build)."""
        updated = replace(self, self_allowance=allowance)
        if "_clusters" in self.__dict__:
            object.__setattr__(updated, "_clusters", self.__dict__["_clusters"])
        return updated


def build_surface_setup(
    rest_vertices: np.ndarray,
    rest_normals: np.ndarray,
    skinning_weights: np.ndarray,
    rest_frames: np.ndarray,
    parents: Sequence[int],
    tested_vertices: np.ndarray,
    needed_vertices: np.ndarray,
    proxy: Sequence[int],
) -> SurfaceSetup:
    """rest_vertices, rest_normals: (V, 3); skinning_weights: (V, J); rest_frames: (J, 4, 4);
    tested_vertices: mesh ids (a subset of the sorted ``needed_vertices``); proxy: the bones
    that stand for their subtrees (as for the capsules: a finger or a toe counts as its hand or
    foot, so a hand's own fingers are never tested against each other)."""
    slots = np.searchsorted(needed_vertices, tested_vertices)
    dominant = proxy_bones(skinning_weights.argmax(1)[tested_vertices], parents, proxy)
    bones = np.unique(dominant)
    lookup = {int(b): i for i, b in enumerate(bones)}
    near_tree = np.array([[_tree_distance(parents, int(a), int(b)) <= ADJACENT_HOPS for b in bones] for a in bones])
    index = np.array([lookup[int(d)] for d in dominant])
    points = torch.tensor(rest_vertices[tested_vertices], dtype=torch.float32)
    near_rest = (torch.cdist(points, points) < SELF_REST_FAR_M).numpy()
    allowed = ~(near_tree[index][:, index] | near_rest)
    return SurfaceSetup(
        slots=torch.tensor(slots, dtype=torch.long),
        rest_normals=torch.tensor(rest_normals[tested_vertices], dtype=torch.float32),
        skinning=torch.tensor(skinning_weights[tested_vertices], dtype=torch.float32),
        rest_frames_inverse=torch.tensor(np.linalg.inv(rest_frames), dtype=torch.float32),
        self_allowed=torch.tensor(allowed, dtype=torch.bool),
        cluster_members=torch.tensor(surface_clusters(rest_vertices[tested_vertices], dominant), dtype=torch.long),
    )


def surface_clusters(points: np.ndarray, groups: np.ndarray, max_size: int = SURFACE_CLUSTER_SIZE) -> np.ndarray:
    """Split the sample into small clusters of nearby vertices: each group (the vertices of one
    proxy bone, which move together) is halved along its longest principal axis until every
    part has at most ``max_size`` vertices. points: (S, 3) rest positions; groups: (S,).
    Returns (M, max_size) sample indices, rows padded with -1."""
    parts: list[np.ndarray] = []
    pending = [np.nonzero(groups == g)[0] for g in np.unique(groups)]
    while pending:
        ids = pending.pop()
        if len(ids) <= max_size:
            parts.append(ids)
            continue
        centred = points[ids] - points[ids].mean(0)
        axis = np.linalg.svd(centred, full_matrices=False)[2][0]
        order = ids[np.argsort(centred @ axis, kind="stable")]
        half = len(order) // 2
        pending += [order[:half], order[half:]]
    members = np.full((len(parts), max_size), -1, dtype=np.int64)
    for row, ids in enumerate(sorted(parts, key=lambda p: int(p.min()))):
        members[row, : len(ids)] = np.sort(ids)
    return members


def _posed_normals(setup: SurfaceSetup, joint_frames: torch.Tensor, person: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
    """(K,) person and sample indices -> (K, 3) unit posed normals (no gradient)."""
    with torch.no_grad():
        dtype = joint_frames.dtype
        # The skin transforms' rotations (world @ inverse rest, whose bottom row is 0 0 0 1).
        rotations = joint_frames.detach()[..., :3, :3] @ setup.rest_frames_inverse[:, :3, :3].to(dtype)  # (N, J, 3, 3)
        num_people, joints = rotations.shape[:2]
        columns = rotations.reshape(num_people, joints, 9).permute(1, 0, 2).reshape(joints, num_people * 9)
        # Blend the asked vertices' rotations for every person in one product, then keep each
        # row's own person.
        blended = (setup.skinning[sample].to(dtype) @ columns).view(-1, 9)  # (K N, 9)
        chosen = blended.index_select(0, torch.arange(len(sample)) * num_people + person).view(-1, 3, 3)
        normals = (chosen @ setup.rest_normals[sample][..., None].to(dtype))[..., 0]
        return normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-9)


def surface_candidates(setup: SurfaceSetup, vertices: torch.Tensor, joint_frames: torch.Tensor) -> torch.Tensor:
    """(K, 5) long rows (point person, surface person, point sample, surface sample, group):
    each tested vertex with its nearest vertex of each body, where it is within
    SURFACE_CANDIDATE_MARGIN_M of the tolerance (no gradient), and with every other surface
    vertex at most SURFACE_TRACK_BAND_M farther from it than that one; the rows of one point
    and body share a group (numbered from 0), whose nearest row surface_value measures.
    vertices: (N, V', 3).

    The nearest vertex is searched cluster by cluster: a pair of clusters (small groups of
    nearby sample vertices, ``SurfaceSetup.cluster_members``) is compared vertex by vertex
    only when their posed bounding spheres come within SURFACE_MAX_DISTANCE_M of each
    other, a lower bound on every distance between their vertices, so the result is exactly
    that of comparing every vertex with every other, at a small fraction of the work.
    Coordinates are taken about the sample's centre, so float32 rounding stays far below a
    millimetre."""
    with torch.no_grad():
        num_people, count = vertices.shape[0], len(setup.slots)
        flat_slots = (torch.arange(num_people)[:, None] * vertices.shape[1] + setup.slots).reshape(-1)
        points = vertices.reshape(-1, 3).index_select(0, flat_slots)  # (N S, 3), person-major
        points = points - points.mean(0)
        members, member_mask, self_pairs, self_forbidden = setup.clusters
        num_clusters, size = members.shape
        flat_members = (torch.arange(num_people)[:, None, None] * count + members).reshape(-1)  # (N M K,)
        grouped = points.index_select(0, flat_members).reshape(num_people, num_clusters, size, 3)
        centre, radius = _cluster_spheres(grouped, member_mask)
        radius = radius.reshape(-1)  # (N * M,)
        flat_centre = centre.reshape(-1, 3)
        bound = torch.cdist(flat_centre, flat_centre) - radius[:, None] - radius[None, :]
        close = bound < SURFACE_MAX_DISTANCE_M
        same_person = torch.eye(num_people, dtype=torch.bool).repeat_interleave(num_clusters, 0).repeat_interleave(num_clusters, 1)
        close &= ~same_person | self_pairs.repeat(num_people, num_people)
        # (P, 2) flat (person, cluster) of the point side and the surface side, row-major as
        # nonzero gives them (numpy's is several times faster on a matrix this size).
        pairs = torch.from_numpy(np.stack(np.divmod(np.flatnonzero(close.numpy()), close.shape[1]), axis=1))
        if pairs.shape[0] == 0:
            return torch.zeros(0, 5, dtype=torch.long)
        # Pairs within one body first, so that their self mask applies to one slice.
        across = pairs[:, 0] // num_clusters != pairs[:, 1] // num_clusters
        pairs = pairs[torch.argsort(across.to(torch.int8), stable=True)]
        within_body = len(pairs) - int(across.sum())
        side_a, side_b = pairs[:, 0], pairs[:, 1]
        person_a, cluster_a = side_a // num_clusters, side_a % num_clusters
        person_b, cluster_b = side_b // num_clusters, side_b % num_clusters
        # Squared distances as |a|^2 + (|b|^2 - 2 b.a), the bracket one batched product of
        # [b, |b|^2] and [-2 a, 1] (|b|^2 infinite on padding), rows made per cluster before
        # the pairs gather them. Surface members run along the middle axis, so the minimum
        # over them is a few element-wise minima of contiguous halves (a min-reduction along
        # the last axis is not vectorised).
        flat_grouped = grouped.reshape(-1, size, 3)  # (N * M, K, 3)
        norm = (flat_grouped * flat_grouped).sum(-1)  # (N * M, K)
        as_surface = torch.cat([flat_grouped, norm.masked_fill(~member_mask.repeat(num_people, 1), math.inf)[..., None]], dim=-1)
        as_point = torch.cat([flat_grouped * -2.0, torch.ones_like(norm)[..., None]], dim=-1).transpose(1, 2).contiguous()
        squared = torch.bmm(as_surface.index_select(0, side_b), as_point.index_select(0, side_a))
        squared += norm.index_select(0, side_a)[:, None, :]  # (P, K surface, K point)
        if within_body:
            blocks = self_forbidden.index_select(0, cluster_a[:within_body] * num_clusters + cluster_b[:within_body])
            squared[:within_body] += blocks
        nearest_sq = _min_over_middle(squared)  # (P, K point)
        pair_point_ids = members.index_select(0, cluster_a)  # (P, K)
        point_mask = member_mask.index_select(0, cluster_a)
        limit_sq = SURFACE_MAX_DISTANCE_M * SURFACE_MAX_DISTANCE_M
        valid = point_mask & (nearest_sq < limit_sq)
        # Each (point person, surface person, point) may be seen from several surface clusters:
        # keep the nearest.
        valid_pair, valid_point = valid.nonzero(as_tuple=True)
        keys = (person_a * num_people + person_b)[valid_pair] * count + pair_point_ids[valid_pair, valid_point]
        nearest_sq = nearest_sq[valid_pair, valid_point]
        best = torch.full((num_people * num_people * count,), math.inf, dtype=nearest_sq.dtype)
        best.scatter_reduce_(0, keys, nearest_sq, reduce="amin")
        winner = nearest_sq <= best[keys]
        keys, valid_pair, valid_point = keys[winner], valid_pair[winner], valid_point[winner]
        keys, first = _first_of_each(keys)
        valid_pair, valid_point = valid_pair[first], valid_point[first]
        column = squared[valid_pair, :, valid_point].argmin(dim=1)  # the first nearest, as min(dim) gives
        surface_ids = members[cluster_b[valid_pair], column]
        point_ids = keys % count
        person_pair = keys // count
        rows_a, rows_b = person_pair // num_people, person_pair % num_people
        normals = _posed_normals(setup, joint_frames, rows_b, surface_ids)
        gap = points.index_select(0, rows_a * count + point_ids) - points.index_select(0, rows_b * count + surface_ids)
        depth = -(gap * normals).sum(-1)
        lateral = (gap + depth[:, None] * normals).norm(dim=-1)
        keep = (depth > SURFACE_TOLERANCE_M - SURFACE_CANDIDATE_MARGIN_M) & (lateral < SURFACE_MAX_LATERAL_M)
        if not bool(keep.any()):
            return torch.zeros(0, 5, dtype=torch.long)
        # The band around each kept point's nearest vertex, read from the same distances.
        kept_keys = keys[keep]  # sorted
        group_of_key = torch.full((num_people * num_people * count,), -1, dtype=torch.long)
        group_of_key[kept_keys] = torch.arange(len(kept_keys))
        reach = (best[kept_keys].clamp(min=0.0).sqrt() + SURFACE_TRACK_BAND_M) ** 2  # (G,); rounding can make 0 negative
        entry_keys = (person_a * num_people + person_b)[:, None] * count + pair_point_ids  # (P, K)
        group = group_of_key[entry_keys].masked_fill(~point_mask, -1)
        # Only the few cluster pairs with a kept point are read again.
        pair = (group >= 0).any(dim=1).nonzero()[:, 0]
        group = group[pair]
        within = (group >= 0)[:, None, :] & (squared[pair] <= reach[group.clamp(min=0)][:, None, :])  # (P', K s, K p)
        local, surface, point = within.nonzero(as_tuple=True)
        group, pair = group[local, point], pair[local]
        rows = torch.stack(
            [person_a[pair], person_b[pair], members[cluster_a[pair], point], members[cluster_b[pair], surface], group], 1
        )
        return rows[torch.argsort(rows[:, 4], stable=True)]


def _min_over_middle(values: torch.Tensor) -> torch.Tensor:
    """(P, K, L) -> (P, L) minimum over the middle axis, by halving it (K a power of two
    gives exactly torch.amin's values; any other K is padded with +inf)."""
    size = values.shape[1]
    width = 1 << max(0, (size - 1).bit_length())
    if width != size:
        values = torch.cat([values, values.new_full((values.shape[0], width - size, values.shape[2]), math.inf)], dim=1)
    while values.shape[1] > 1:
        half = values.shape[1] // 2
        values = torch.minimum(values[:, :half], values[:, half:])
    return values[:, 0]


def _first_of_each(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted unique keys and, for each, the position of one of its entries in ``keys``."""
    unique, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    position = torch.full((len(unique),), len(keys), dtype=torch.long)
    position.scatter_reduce_(0, inverse, torch.arange(len(keys)), reduce="amin")
    return unique, position


@dataclass(frozen=True)
class SurfaceRows:
    """Surface-test candidate rows made ready for evaluation once per search.

    candidates: (K, 5) long rows (point person, surface person, point sample, surface
        sample, group), sorted by group, see surface_candidates;
    ends: (K, 2) long rows of each row's point and surface vertex into the flattened
        (N V', 3) posed needed vertices;
    layout: (G, B) long the rows of each group in their order, padded with K, so that the
        row nearest now is one arg-min along a row of it;
    onset: (K,) metres, the depth where the row's penalty starts (the tolerance, plus the
        point's allowance below its own person's surface);
    count: V', the needed vertices per person the rows point into."""

    candidates: torch.Tensor
    ends: torch.Tensor
    layout: torch.Tensor
    onset: torch.Tensor
    count: int


def surface_rows(setup: SurfaceSetup, candidates: torch.Tensor, count: int) -> SurfaceRows:
    """Prepare ``candidates`` (K, 5) for posed needed vertices of ``count`` (V') per person."""
    person_a, person_b, point, surface, group = candidates.unbind(1)
    total = len(candidates)
    groups = int(group[-1]) + 1 if total else 0
    sizes = torch.bincount(group, minlength=groups)
    first = torch.cumsum(sizes, 0) - sizes  # rows are sorted by group
    layout = torch.full((groups, int(sizes.max()) if total else 0), total, dtype=torch.long)
    layout[group, torch.arange(total) - first[group]] = torch.arange(total)
    allowance = None if setup.self_allowance is None else setup.self_allowance[person_a, point]
    onset = _onsets(SURFACE_TOLERANCE_M, allowance, person_a == person_b, setup.rest_normals.dtype)
    ends = torch.stack([person_a * count + setup.slots[point], person_b * count + setup.slots[surface]], dim=1)
    return SurfaceRows(candidates=candidates, ends=ends, layout=layout, onset=onset, count=count)


def _check_count(count: int, vertices: torch.Tensor) -> None:
    """Prepared rows index flattened vertices: rows made for another vertex count would read
    the wrong vertices without any error."""
    if vertices.shape[1] != count:
        raise ValueError(f"candidate rows were prepared for {count} vertices per person, got {vertices.shape[1]}")


def _nearest_rows(rows: SurfaceRows, vertices: torch.Tensor) -> torch.Tensor:
    """(G,) the row of each group whose surface vertex is now nearest to its point (the first
    on a tie; non-finite vertices still choose)."""
    _check_count(rows.count, vertices)
    with torch.no_grad():
        ends = vertices.detach().reshape(-1, 3).index_select(0, rows.ends.reshape(-1)).reshape(-1, 2, 3)
        gap = ends[:, 0] - ends[:, 1]
        squared = torch.nan_to_num((gap * gap).sum(-1), nan=math.inf)  # +inf becomes the largest finite
        padded = torch.cat([squared, squared.new_full((1,), math.inf)])  # padding never wins
        return rows.layout.gather(1, padded[rows.layout].argmin(dim=1, keepdim=True))[:, 0]


def nearest_of_groups(setup: SurfaceSetup, vertices: torch.Tensor, candidates: torch.Tensor | SurfaceRows) -> torch.Tensor:
    """The row of each group of ``candidates`` (see surface_candidates) whose surface vertex
    is now nearest to its point (the first on a tie): (G, 4) rows (point person, surface
    person, point sample, surface sample)."""
    rows = candidates if isinstance(candidates, SurfaceRows) else surface_rows(setup, candidates, vertices.shape[1])
    if rows.candidates.shape[0] == 0:
        return rows.candidates[:, :4]
    return rows.candidates[_nearest_rows(rows, vertices), :4]


def surface_value(
    setup: SurfaceSetup, vertices: torch.Tensor, joint_frames: torch.Tensor, candidates: torch.Tensor | SurfaceRows
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penalty ``sum relu(depth - tolerance)^2 / DEPTH_SCALE_M^2`` over the candidates (each
    point against its group's nearest surface vertex, see nearest_of_groups) and their
    maximum depth (metres, -1 without rows). candidates: (K, 5) rows or the same prepared by
    :func:`surface_rows` (as the optimizer does once per search)."""
    rows = candidates if isinstance(candidates, SurfaceRows) else surface_rows(setup, candidates, vertices.shape[1])
    if rows.candidates.shape[0] == 0:
        return vertices.new_zeros(()), vertices.new_full((), -1.0)
    chosen = _nearest_rows(rows, vertices)
    chosen_rows = rows.candidates.index_select(0, chosen)
    normals = _posed_normals(setup, joint_frames, chosen_rows[:, 1], chosen_rows[:, 3]).to(vertices.dtype)
    ends = vertices.reshape(-1, 3).index_select(0, rows.ends.index_select(0, chosen).reshape(-1)).reshape(-1, 2, 3)
    onset = rows.onset.index_select(0, chosen).to(vertices.dtype)
    return _SurfacePenalty.apply(ends, normals, onset)


def initial_surface_self_allowance(setup: SurfaceSetup, vertices: torch.Tensor, joint_frames: torch.Tensor) -> torch.Tensor:
    """(N, S) how far below its own person's surface, beyond the tolerance, each sample
    vertex sits in the initial pose (0 where it does not): the surface test's counterpart of
    :func:`initial_self_allowance`, so that the artist's own self-contact (a hand pressed on
    a hip, crossed arms) is kept as posed and only sinking deeper costs anything. Per vertex
    rather than per pair, since the surface vertex nearest to it changes as the body moves.

    vertices: (N, V', 3) the initial pose's needed vertices; joint_frames: (N, J, 4, 4)."""
    with torch.no_grad():
        num_people, count = vertices.shape[0], len(setup.slots)
        allowance = torch.zeros(num_people * count, dtype=vertices.dtype)
        rows = nearest_of_groups(setup, vertices, surface_candidates(setup, vertices, joint_frames))
        rows = rows[rows[:, 0] == rows[:, 1]]
        if len(rows):
            person, _, point, surface = rows.unbind(1)
            normals = _posed_normals(setup, joint_frames, person, surface)
            gap = vertices[person, setup.slots[point]] - vertices[person, setup.slots[surface]]
            excess = (-(gap * normals).sum(-1) - SURFACE_TOLERANCE_M).clamp(min=0.0)
            allowance.scatter_reduce_(0, person * count + point, excess, reduce="amax")
        return allowance.reshape(num_people, count)
