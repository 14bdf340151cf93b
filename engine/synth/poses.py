"""Pose helpers of the scene generator: placing people on the floor, turning joints in a
person's own frame, the regressor-like noise, and the measures every scene is judged by
(ground-truth contact distances on full region vertex sets, mesh penetration, vertex error).

Shared with ``benchmarks/refine_benchmark.py`` (its ``turn_joints`` is :func:`turn_joints`).
No bpy; torch and numpy only."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from engine.body.regions import GROUND
from engine.refine.losses.geometry import axis_angle_to_matrix
from engine.refine.metrics import max_penetration_depth, vertex_normals
from engine.refine.optimizer import PeopleState

FLOOR = 0.0

# A ground-truth contact: (person_a, region_a, person_b, region_b); region_b may be "ground"
# (then person_b == person_a).
Contact = tuple[int, str, int, str]

# Anny's joints by kinematic chain (the noise of a pose regressor is drawn per chain).
ANNY_CHAINS: dict[str, tuple[str, ...]] = {
    "spine": ("spine05", "spine04", "spine03", "spine02", "spine01"),
    "neck": ("neck01", "neck02", "neck03", "head"),
    **{
        f"arm.{s}": tuple(f"{j}.{s}" for j in ("clavicle", "shoulder01", "upperarm01", "upperarm02", "lowerarm01", "lowerarm02", "wrist"))
        for s in "LR"
    },
    **{
        f"leg.{s}": tuple(f"{j}.{s}" for j in ("pelvis", "upperleg01", "upperleg02", "lowerleg01", "lowerleg02", "foot"))
        for s in "LR"
    },
}


def yaw_matrix(degrees: float) -> torch.Tensor:
    return axis_angle_to_matrix(torch.tensor([0.0, 0.0, np.radians(degrees)], dtype=torch.float32))


def stand_heights(body, shapes: torch.Tensor) -> torch.Tensor:
    """(N,) root heights that put each rest-pose body's lowest vertex on the floor."""
    with torch.no_grad():
        rest = body.rest_vertices(shapes.to(torch.float32))
    return FLOOR - rest[..., 2].amin(dim=1)


def placement_state(body, placement: Sequence[tuple[float, float, float]], shapes: torch.Tensor) -> PeopleState:
    """Everyone in the rest pose, standing on the floor at (x, y, yaw in degrees)."""
    n, j = len(placement), len(body.joint_names)
    rotations = torch.eye(3).repeat(n, j, 1, 1)
    translations = torch.zeros(n, 3)
    heights = stand_heights(body, shapes)
    for p, (x, y, yaw) in enumerate(placement):
        rotations[p, 0] = yaw_matrix(yaw)
        translations[p] = torch.tensor([x, y, float(heights[p])])
    return PeopleState(rotations, translations, shapes.to(torch.float32).clone())


def turn_joints(
    body, state: PeopleState, turns: Sequence[tuple[int, str, tuple[float, float, float]]], yaws: Sequence[float]
) -> PeopleState:
    """Apply ``turns`` in order: each (person, joint, rotation vector in degrees) rotates one
    joint (and so its subtree) about the joint, the rotation vector given in the person's own
    frame (x to the person's left, y backward, z up; ``yaws[person]`` degrees of the person's
    heading about z), i.e. as the posed body is seen, whatever the joint's local axes are. A
    turn of a joint whose local rotation is L, with posed world frame W, sets
    L' = L W^T Q W (Q the turn in world axes), so W' = Q W.

    Conventions (Anny, rest pose): a positive turn about x swings a hanging limb backward (a
    knee bends, a hip or shoulder extends; the upright trunk leans forward), negative forward;
    about y, positive swings a hanging limb towards the person's right (it raises the right
    arm or leg sideways); about z, positive turns a forward-pointing limb towards the
    person's left."""
    rotations = state.local_rotations.clone()
    for person, joint_name, degrees in turns:
        joint = body.joint_names.index(joint_name)
        with torch.no_grad():
            frames = body.forward(rotations, state.root_translation, state.shape).joint_frames
        world = frames[person, joint, :3, :3]
        yaw = yaw_matrix(yaws[person])
        turn = yaw @ axis_angle_to_matrix(torch.tensor(np.radians(degrees), dtype=torch.float32)) @ yaw.T
        rotations[person, joint] = rotations[person, joint] @ world.T @ turn @ world
    return PeopleState(rotations, state.root_translation.clone(), state.shape.clone())


def mirror_turn(joint: str, degrees: tuple[float, float, float]) -> tuple[str, tuple[float, float, float]]:
    """The same turn on the other side of the body (mirror through the person's sagittal
    plane x -> -x: a rotation vector (x, y, z) becomes (x, -y, -z), .L and .R swap)."""
    if joint.endswith(".L"):
        joint = joint[:-2] + ".R"
    elif joint.endswith(".R"):
        joint = joint[:-2] + ".L"
    x, y, z = degrees
    return joint, (x, -y, -z)


def mirror_region(region: str) -> str:
    if region.startswith("left_"):
        return "right_" + region[len("left_"):]
    if region.startswith("right_"):
        return "left_" + region[len("right_"):]
    return region


def posed_vertices(body, state: PeopleState) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, V, 3) vertices and (N, J, 3) joints of a state, without gradient."""
    with torch.no_grad():
        out = body.forward(state.local_rotations, state.root_translation, state.shape)
    return out.vertices, out.joints


def contact_distances(regions, contacts: Sequence[Contact], vertices: torch.Tensor, floor: float = FLOOR) -> list[float]:
    """Each ground-truth contact's distance on the full region vertex sets: the minimum
    distance between the two regions, or for a ground row |lowest vertex height - floor|."""
    distances = []
    for a, ra, b, rb in contacts:
        va = vertices[a, torch.as_tensor(regions.vertex_ids(ra))]
        if rb == GROUND:
            distances.append(abs(float(va[:, 2].min()) - floor))
        else:
            vb = vertices[b, torch.as_tensor(regions.vertex_ids(rb))]
            distances.append(float(torch.cdist(va, vb).min()))
    return distances


def mirrored_contacts(contact: Contact, num_people: int) -> list[Contact]:
    """The contact and every other assignment of its parts: each sided region on either side,
    and for two people both person orders (what an unsided answer "hand | shoulder" allows)."""
    a, ra, b, rb = contact

    def sides(region: str) -> list[str]:
        for side in ("left_", "right_"):
            if region.startswith(side):
                rest = region[len(side):]
                return [f"left_{rest}", f"right_{rest}"]
        return [region]

    orders = [(a, b)] if (num_people == 1 or rb == GROUND) else [(a, b), (b, a)]
    return [(pa, x, pb, y) for pa, pb in orders for x in sides(ra) for y in (sides(rb) if rb != GROUND else [rb])
            if not (num_people == 1 and x == y)]


def assignment_free_distances(regions, contacts: Sequence[Contact], vertices: torch.Tensor, num_people: int,
                              floor: float = FLOOR) -> list[float]:
    """Each ground-truth contact's distance taken over its mirrored assignments
    (mirrored_contacts): whether the same parts touch, whichever limb or person it is."""
    return [min(contact_distances(regions, mirrored_contacts(c, num_people), vertices, floor)) for c in contacts]


def _near_mask(points: torch.Tensor, surface: torch.Tensor, radius: float) -> torch.Tensor:
    """(P,) True for every point that may lie within ``radius`` of some surface vertex (a
    superset: voxels of size ``radius / 2`` within two voxels of an occupied one)."""
    cell = radius / 2.0
    keys_s = torch.floor(surface / cell).long()
    keys_p = torch.floor(points / cell).long()
    low = torch.minimum(keys_s.amin(0), keys_p.amin(0)) - 3
    span = torch.maximum(keys_s.amax(0), keys_p.amax(0)) - low + 4

    def flat(keys: torch.Tensor) -> torch.Tensor:
        k = keys - low
        return (k[..., 0] * span[1] + k[..., 1]) * span[2] + k[..., 2]

    occupied = torch.unique(keys_s, dim=0)
    steps = torch.arange(-2, 3)
    offsets = torch.cartesian_prod(steps, steps, steps)
    dilated = torch.unique(flat(occupied[:, None, :] + offsets[None]).reshape(-1))
    return torch.isin(flat(keys_p), dilated)


def max_penetration(points: np.ndarray, surface_vertices: np.ndarray, surface_normals: np.ndarray, max_depth_m: float = 0.1) -> float:
    """engine.refine.metrics.max_penetration_depth on only the points that can count (those
    within ``max_depth_m`` of the surface, found by a voxel filter first): the same value,
    a hundred times faster on two whole meshes that touch in one place."""
    pts = torch.as_tensor(np.asarray(points), dtype=torch.float64)
    surf = torch.as_tensor(np.asarray(surface_vertices), dtype=torch.float64)
    keep = _near_mask(pts, surf, max_depth_m)
    if not bool(keep.any()):
        return 0.0
    # The nearest surface vertex of a point that counts lies within max_depth_m of it, so
    # near a kept point: the surface shrinks the same way without changing any result.
    near = _near_mask(surf, pts[keep], max_depth_m).numpy()
    return max_penetration_depth(pts[keep].numpy(), np.asarray(surface_vertices)[near], np.asarray(surface_normals)[near], max_depth_m)


def penetration_depth(body, regions, contacts: Sequence[Contact], vertices: torch.Tensor) -> float:
    """Deepest body-into-body penetration (metres), mesh-based
    (engine.refine.metrics.max_penetration_depth, both ways): between the two people, or for
    one person between the regions of its ground-truth contacts (the floor is not a body)."""
    v = vertices.detach().numpy()
    faces = np.asarray(body.faces)
    deepest = 0.0
    if v.shape[0] == 2:
        normals = [vertex_normals(x, faces) for x in v]
        deepest = max(deepest, max_penetration(v[0], v[1], normals[1]))
        deepest = max(deepest, max_penetration(v[1], v[0], normals[0]))
        return deepest
    normals = vertex_normals(v[0], faces)
    for _, ra, _, rb in contacts:
        if rb == GROUND:
            continue
        ids_a, ids_b = regions.vertex_ids(ra), regions.vertex_ids(rb)
        deepest = max(deepest, max_penetration(v[0][ids_a], v[0][ids_b], normals[ids_b]))
        deepest = max(deepest, max_penetration(v[0][ids_b], v[0][ids_a], normals[ids_a]))
    return deepest


def below_floor(vertices: torch.Tensor, floor: float = FLOOR) -> float:
    """How deep the lowest vertex sits below the floor (metres, 0 above it)."""
    return max(0.0, floor - float(vertices[..., 2].min()))


def vertex_error(vertices: torch.Tensor, target: torch.Tensor) -> float:
    """Mean per-vertex Euclidean distance over every person's mesh (metres)."""
    return float(torch.linalg.norm(vertices - target, dim=-1).mean())
