"""Body-part regions on a body model's mesh, derived from its skinning weights and geometry.

Every elementary region of ``engine.body.regions.ELEMENTARY_REGIONS`` gets a vertex set; composite
regions ("waist", "left_shoulder") are unions of their members. The derivation:

1. Each vertex joins the *skin group* (head, neck, torso, shoulder, arm, hand, leg, foot) whose
   joints carry most of its skinning weight; the joint -> group rules are plain data per body
   model (``engine.body.anny_data``, ``engine.body.smplx_data``). Sided groups take the side of
   the vertex's heaviest joint.
2. A shoulder is its shoulder-group vertices (clavicle) plus the torso and arm vertices within
   ``SHOULDER_RADIUS`` (a fraction of the shoulder -> neck-base distance) of the head of the
   upper arm: the deltoid and the top of the shoulder, which skinning gives to the arm or the
   spine.
3. Geometry splits the torso and shoulders, in the world frame at rest (forward = -Y, up = +Z),
   with heights measured from the hip joints (h = 0) to the base of the neck (h = 1):
   * front / back: a vertex is in front when its y is below the middle of the y-extent of its
     group at its height (a 2 cm band), which follows the curve of the spine;
   * butt: back-facing torso and leg vertices with -0.22 <= h <= 0.18;
   * front torso: chest above h = 0.62, stomach from 0.30, waist_front below;
   * back torso: back above h = 0.55, waist_back below (and above the butt).
4. Each region keeps a fixed farthest-point subsample (at most ``SUBSAMPLE_SIZE`` vertices,
   deterministic) for the losses.

The result is cached on disk by the body's identity hash (the model file's hash for SMPL-X, so
regions come from the user's own file and nothing licensed is stored). A cache file that cannot
be read is rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.body.base import BodyModel
from engine.cache import cache_dir
from engine.files import atomic_file
from engine.body.regions import ELEMENTARY_REGIONS, MESH_REGIONS, composite_members

# Bump when the derivation changes: it is part of the cache key.
REGION_RULES_VERSION = 1
SUBSAMPLE_SIZE = 150

# Heights as fractions of hip -> neck-base (see module docstring).
BUTT_LOW, BUTT_HIGH = -0.22, 0.18
CHEST_LOW, STOMACH_LOW = 0.62, 0.30
UPPER_BACK_LOW = 0.55
BAND_HEIGHT_M = 0.02
SHOULDER_RADIUS = 0.5


@dataclass(frozen=True)
class BodyRegions:
    """Vertex sets of every region of one body model.

    elementary: region name -> sorted (N,) int64 vertex ids (full set).
    subsamples: region name -> (M,) int64 vertex ids, M <= SUBSAMPLE_SIZE.
    """

    elementary: dict[str, np.ndarray]
    subsamples: dict[str, np.ndarray]
    loaded_from_cache: bool = field(default=False, compare=False)

    @property
    def names(self) -> tuple[str, ...]:
        return MESH_REGIONS

    def vertex_ids(self, region: str) -> np.ndarray:
        """All vertex ids of a region (a composite is the union of its members)."""
        members = composite_members(region)
        if len(members) == 1:
            return self.elementary[members[0]]
        return np.unique(np.concatenate([self.elementary[m] for m in members]))

    def subsample(self, region: str) -> np.ndarray:
        """The fixed subsample of a region (a composite concatenates its members')."""
        members = composite_members(region)
        if len(members) == 1:
            return self.subsamples[members[0]]
        return np.unique(np.concatenate([self.subsamples[m] for m in members]))


def _rules_for(kind: str):
    if kind == "anny":
        from engine.body import anny_data

        return anny_data
    if kind == "smplx":
        from engine.body import smplx_data

        return smplx_data
    raise KeyError(f"no region rules for body kind {kind!r}")


def rest_geometry(body: BodyModel) -> tuple[np.ndarray, np.ndarray]:
    """Rest vertices (V, 3) and joint positions (J, 3) at the default shape, world frame."""
    with torch.no_grad():
        shape = body.default_shape().unsqueeze(0)
        vertices = body.rest_vertices(shape)[0].double().numpy()
        joints = body.rest_joint_frames(shape)[0, :, :3, 3].double().numpy()
    to_world = np.asarray(body.model_to_world, dtype=np.float64)
    return vertices @ to_world.T, joints @ to_world.T


def _front_mask(points: np.ndarray, members: np.ndarray) -> np.ndarray:
    """For the vertices ``members`` of one group, True where the vertex is in front of the
    middle of the group's y-extent at its height (forward = -Y)."""
    z = points[members, 2]
    y = points[members, 1]
    band = np.floor(z / BAND_HEIGHT_M).astype(np.int64)
    middle = np.empty_like(y)
    for value in np.unique(band):
        in_band = (band >= value - 1) & (band <= value + 1)
        here = band == value
        middle[here] = 0.5 * (y[in_band].min() + y[in_band].max())
    return y < middle


def derive_regions(body: BodyModel) -> dict[str, np.ndarray]:
    """Elementary region name -> sorted vertex ids (see module docstring)."""
    rules = _rules_for(body.kind)
    vertices, joints = rest_geometry(body)
    weights = np.asarray(body.skinning_weights(), dtype=np.float64)
    group_of_joint = [rules.joint_group(name) for name in body.joint_names]
    side_of_joint = [rules.joint_side(name) for name in body.joint_names]
    groups = sorted(set(group_of_joint))
    group_weight = np.zeros((weights.shape[0], len(groups)))
    for joint, group in enumerate(group_of_joint):
        group_weight[:, groups.index(group)] += weights[:, joint]
    vertex_group = np.array(groups)[np.argmax(group_weight, axis=1)]
    # The side of a vertex is that of its heaviest sided joint (limbs never mix sides much).
    sided = np.array([side is not None for side in side_of_joint])
    heaviest_sided = np.argmax(np.where(sided[None, :], weights, -1.0), axis=1)
    vertex_side = np.array([side_of_joint[j] or "" for j in heaviest_sided])

    name_index = {name: i for i, name in enumerate(body.joint_names)}
    hip_height = float(np.mean([joints[name_index[n], 2] for n in rules.HIP_JOINTS]))
    neck_height = float(joints[name_index[rules.NECK_BASE_JOINT], 2])
    h = (vertices[:, 2] - hip_height) / (neck_height - hip_height)

    regions: dict[str, np.ndarray] = {}
    everything = np.arange(len(vertices))

    def in_group(group: str) -> np.ndarray:
        return everything[vertex_group == group]

    regions["head"] = in_group("head")
    regions["neck"] = in_group("neck")

    neck_base = joints[name_index[rules.NECK_BASE_JOINT]]
    shoulder_sets = {}
    torso_or_arm = np.concatenate([in_group("torso"), in_group("arm")])
    for side, joint_name in zip(("left", "right"), rules.SHOULDER_JOINTS):
        centre = joints[name_index[joint_name]]
        radius = SHOULDER_RADIUS * float(np.linalg.norm(centre - neck_base))
        near = torso_or_arm[np.linalg.norm(vertices[torso_or_arm] - centre, axis=1) < radius]
        if side == "left":
            near = near[vertices[near, 0] > 0]
        else:
            near = near[vertices[near, 0] < 0]
        clavicle = in_group("shoulder")
        clavicle = clavicle[vertex_side[clavicle] == side]
        shoulder_sets[side] = np.union1d(clavicle, near)
    shoulders = np.union1d(shoulder_sets["left"], shoulder_sets["right"])

    torso = np.setdiff1d(in_group("torso"), shoulders)
    legs = in_group("leg")
    torso_front = torso[_front_mask(vertices, torso)]
    torso_back = torso[~_front_mask(vertices, torso)]
    hips_and_legs = np.concatenate([torso, legs])
    back_facing = hips_and_legs[~_front_mask(vertices, hips_and_legs)]
    butt = back_facing[(h[back_facing] >= BUTT_LOW) & (h[back_facing] <= BUTT_HIGH)]
    regions["butt"] = butt
    torso_back = np.setdiff1d(torso_back, butt)
    regions["chest"] = torso_front[h[torso_front] > CHEST_LOW]
    regions["stomach"] = torso_front[(h[torso_front] > STOMACH_LOW) & (h[torso_front] <= CHEST_LOW)]
    regions["waist_front"] = torso_front[h[torso_front] <= STOMACH_LOW]
    regions["back"] = torso_back[h[torso_back] > UPPER_BACK_LOW]
    regions["waist_back"] = torso_back[h[torso_back] <= UPPER_BACK_LOW]

    shoulder_front = _front_mask(vertices, shoulders)
    for side in ("left", "right"):
        on_side = np.isin(shoulders, shoulder_sets[side])
        regions[f"{side}_shoulder_front"] = shoulders[on_side & shoulder_front]
        regions[f"{side}_shoulder_back"] = shoulders[on_side & ~shoulder_front]
        arm = np.setdiff1d(in_group("arm"), shoulders)
        regions[f"{side}_arm"] = arm[vertex_side[arm] == side]
        for group in ("hand", "foot"):
            members = in_group(group)
            regions[f"{side}_{group}"] = members[vertex_side[members] == side]
        leg = np.setdiff1d(legs, butt)
        regions[f"{side}_leg"] = leg[vertex_side[leg] == side]

    missing = [name for name in ELEMENTARY_REGIONS if name not in regions]
    if missing:
        raise AssertionError(f"region derivation left out {missing}")
    return {name: np.sort(regions[name]).astype(np.int64) for name in ELEMENTARY_REGIONS}


def farthest_point_subsample(points: np.ndarray, count: int) -> np.ndarray:
    """Indices into ``points`` (N, 3) of at most ``count`` points spread by farthest-point
    sampling, starting from the point nearest the centroid (deterministic)."""
    n = len(points)
    if n <= count:
        return np.arange(n)
    chosen = np.empty(count, dtype=np.int64)
    chosen[0] = int(np.argmin(np.linalg.norm(points - points.mean(axis=0), axis=1)))
    distance = np.linalg.norm(points - points[chosen[0]], axis=1)
    for i in range(1, count):
        chosen[i] = int(np.argmax(distance))
        distance = np.minimum(distance, np.linalg.norm(points - points[chosen[i]], axis=1))
    return np.sort(chosen)


def build_body_regions(body: BodyModel) -> BodyRegions:
    elementary = derive_regions(body)
    vertices, _ = rest_geometry(body)
    subsamples = {
        name: ids[farthest_point_subsample(vertices[ids], SUBSAMPLE_SIZE)] for name, ids in elementary.items()
    }
    return BodyRegions(elementary, subsamples)


def region_cache_path(body: BodyModel) -> Path:
    return cache_dir() / "regions" / f"{body.kind}-{body.identity_hash}-r{REGION_RULES_VERSION}.npz"


def _save(path: Path, regions: BodyRegions) -> None:
    names = list(ELEMENTARY_REGIONS)
    full = [regions.elementary[n] for n in names]
    sub = [regions.subsamples[n] for n in names]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as stream:
        np.savez(
            stream,
            names=np.array(names),
            offsets=np.cumsum([0] + [len(a) for a in full]).astype(np.int64),
            vertex_ids=np.concatenate(full).astype(np.int64),
            subsample_offsets=np.cumsum([0] + [len(a) for a in sub]).astype(np.int64),
            subsample_ids=np.concatenate(sub).astype(np.int64),
        )


def _load(path: Path, num_vertices: int) -> BodyRegions:
    with np.load(path, allow_pickle=False) as data:
        names = [str(n) for n in data["names"]]
        if names != list(ELEMENTARY_REGIONS):
            raise ValueError("region names differ")
        offsets, ids = data["offsets"], data["vertex_ids"]
        sub_offsets, sub_ids = data["subsample_offsets"], data["subsample_ids"]
    if len(offsets) != len(names) + 1 or offsets[-1] != len(ids) or sub_offsets[-1] != len(sub_ids):
        raise ValueError("inconsistent offsets")
    if len(ids) and (ids.min() < 0 or ids.max() >= num_vertices):
        raise ValueError("vertex id out of range")
    elementary = {n: ids[offsets[i]:offsets[i + 1]] for i, n in enumerate(names)}
    subsamples = {n: sub_ids[sub_offsets[i]:sub_offsets[i + 1]] for i, n in enumerate(names)}
    if any(len(v) == 0 for v in elementary.values()):
        raise ValueError("empty region")
    return BodyRegions(elementary, subsamples, loaded_from_cache=True)


def body_regions(body: BodyModel, use_cache: bool = True) -> BodyRegions:
    """The regions of ``body``, from the on-disk cache when it holds them (a cache file that
    cannot be read is rebuilt, never fatal)."""
    path = region_cache_path(body)
    if use_cache and path.exists():
        try:
            return _load(path, body.num_vertices)
        except Exception:  # noqa: BLE001 - any unreadable cache is simply rebuilt
            pass
    regions = build_body_regions(body)
    if use_cache:
        try:
            _save(path, regions)
        except OSError:
            pass  # a read-only cache folder only costs the derivation next time
    return regions
