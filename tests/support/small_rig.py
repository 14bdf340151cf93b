"""A small rig description with the engine's rig NPZ keys (a bent three-joint tube with
tilted rest frames), and a numpy reference of the engine's skinning convention, for Blender
tests that must not wait for a real body model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

JOINTS = ("root", "spine", "arm")
PARENTS = np.array([-1, 0, 1], dtype=np.int32)


def _rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    x, y, z = axis
    c, s = np.cos(angle), np.sin(angle)
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + s * k + (1 - c) * k @ k


def quaternion_to_matrix(q):
    w, x, y, z = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def make_rig(path: Path, model_to_world: np.ndarray | None = None, kind: str = "anny") -> dict:
    """Write the rig NPZ and return its arrays."""
    heads = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.4], [0.0, 0.1, 0.8]])
    rotations = [np.eye(3), _rotation([1, 0, 0], -np.pi / 2), _rotation([1, 0.3, 0], -1.2)]
    frames = np.zeros((3, 4, 4))
    for j in range(3):
        frames[j, :3, :3] = rotations[j]
        frames[j, :3, 3] = heads[j]
        frames[j, 3, 3] = 1
    tails = heads + np.stack([r[:, 1] for r in rotations]) * 0.3
    # A tube of rings along z, 12 vertices per ring.
    ring, rings = 12, 13
    angles = np.linspace(0, 2 * np.pi, ring, endpoint=False)
    zs = np.linspace(0.0, 1.2, rings)
    vertices = np.array([[0.1 * np.cos(a), 0.1 * np.sin(a), z] for z in zs for a in angles])
    faces = []
    for r in range(rings - 1):
        for i in range(ring):
            a, b = r * ring + i, r * ring + (i + 1) % ring
            c, d = a + ring, b + ring
            faces += [[a, b, d], [a, d, c]]
    faces = np.array(faces, dtype=np.int32)
    # Smooth weights along z between joint heights.
    centres = np.array([0.0, 0.4, 0.8])
    raw = np.exp(-((vertices[:, 2:3] - centres[None]) ** 2) / 0.05)
    raw /= raw.sum(1, keepdims=True)
    wv, wj = np.nonzero(raw > 1e-3)
    wval = raw[wv, wj]
    sums = np.bincount(wv, weights=wval, minlength=len(vertices))
    wval = wval / sums[wv]
    regions = {"lower": np.arange(0, 3 * ring), "upper": np.arange(len(vertices) - 3 * ring, len(vertices))}
    names = list(regions)
    offsets = np.cumsum([0] + [len(regions[n]) for n in names])
    data = dict(
        schema_version=np.int64(1),
        kind=np.str_(kind),
        joint_names=np.array(JOINTS),
        parents=PARENTS,
        rest_joint_frames=frames,
        bone_tails=tails,
        model_to_world=np.eye(3) if model_to_world is None else model_to_world,
        vertices=vertices,
        faces=faces,
        weight_vertex=wv.astype(np.int32),
        weight_joint=wj.astype(np.int32),
        weight_value=wval.astype(np.float32),
        shape=np.zeros(2),
        shape_names=np.array(["height", "weight"]),
        region_names=np.array(names),
        region_offsets=offsets.astype(np.int32),
        region_vertex_ids=np.concatenate([regions[n] for n in names]).astype(np.int32),
    )
    np.savez(path, **data)
    return data


def posed_vertices(data: dict, rotations: dict, root_translation) -> np.ndarray:
    """The engine's convention in numpy: (V, 3) world-frame vertices."""
    frames = data["rest_joint_frames"]
    posed = np.zeros_like(frames)
    for j, parent in enumerate(data["parents"]):
        local = np.eye(4)
        local[:3, :3] = quaternion_to_matrix(rotations.get(JOINTS[j], (1, 0, 0, 0)))
        if parent < 0:
            shift = np.eye(4)
            shift[:3, 3] = root_translation
            posed[j] = shift @ frames[j] @ local
        else:
            posed[j] = posed[parent] @ np.linalg.inv(frames[parent]) @ frames[j] @ local
    skin = np.einsum("jab,jbc->jac", posed, np.linalg.inv(frames))
    weights = np.zeros((len(data["vertices"]), len(JOINTS)))
    weights[data["weight_vertex"], data["weight_joint"]] = data["weight_value"]
    homogeneous = np.concatenate([data["vertices"], np.ones((len(data["vertices"]), 1))], 1)
    per_joint = np.einsum("jab,vb->vja", skin, homogeneous)[..., :3]
    model = np.einsum("vj,vja->va", weights, per_joint)
    return model @ np.asarray(data["model_to_world"]).T
