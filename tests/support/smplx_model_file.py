"""Write an SMPL-X-layout model file (``.npz``) with a procedurally built body, so the real
``smplx`` loading code and every SMPL-X code path run in tests without the licensed model.

It has every key the ``smplx`` loader reads, with SMPL-X's shapes: 10475 vertices, the real 55
joint names and kinematic tree (``engine.body.smplx_data``), 300 + 100 shape components, 486 pose
corrective components. The body is a T-pose made of capsules and ellipsoids around the skeleton
(torso, head, arms, five-fingered hands, legs, feet with toes), in SMPL-X's frame: Y up, facing
+Z, left on +X. Joints are regressed from vertex rings centred on them; skinning weights blend
each segment with its parent and child near the joints; shape and pose directions are small,
smooth and random (seeded).

Usage: ``python tests/support/smplx_model_file.py OUT.npz`` or
``write_smplx_model_file(path, seed=0)``. Never commit a generated file.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from engine.body.smplx_data import (  # noqa: E402
    SMPLX_EXPRESSION_SPACE_DIM,
    SMPLX_JOINT_NAMES,
    SMPLX_NUM_VERTICES,
    SMPLX_PARENTS,
    SMPLX_SHAPE_SPACE_DIM,
)

NUM_POSE_BASIS = (len(SMPLX_JOINT_NAMES) - 1) * 9


def _mirror(point):
    return (-point[0], point[1], point[2])


def _joint_positions() -> dict[str, tuple[float, float, float]]:
    """Designed T-pose joints (metres, Y up, facing +Z, left = +X)."""
    left = {
        "hip": (0.07, -0.44, 0.0),
        "knee": (0.10, -0.83, 0.01),
        "ankle": (0.09, -1.22, -0.03),
        "foot": (0.10, -1.27, 0.09),
        "collar": (0.07, 0.10, -0.01),
        "shoulder": (0.18, 0.12, -0.02),
        "elbow": (0.44, 0.11, -0.03),
        "wrist": (0.69, 0.11, -0.02),
        "eye_smplhf": (0.032, 0.30, 0.085),
    }
    finger_bases = {
        "index": (0.785, 0.112, 0.032),
        "middle": (0.792, 0.112, 0.008),
        "ring": (0.786, 0.110, -0.015),
        "pinky": (0.772, 0.106, -0.035),
    }
    finger_lengths = {"index": (0.036, 0.024), "middle": (0.040, 0.027), "ring": (0.037, 0.025), "pinky": (0.029, 0.019)}
    for finger, base in finger_bases.items():
        first, second = finger_lengths[finger]
        left[f"{finger}1"] = base
        left[f"{finger}2"] = (base[0] + first, base[1] - 0.002, base[2])
        left[f"{finger}3"] = (base[0] + first + second, base[1] - 0.004, base[2])
    left["thumb1"] = (0.715, 0.098, 0.030)
    left["thumb2"] = (0.740, 0.094, 0.058)
    left["thumb3"] = (0.762, 0.091, 0.076)

    joints = {
        "pelvis": (0.0, -0.35, 0.0),
        "spine1": (0.0, -0.24, -0.01),
        "spine2": (0.0, -0.12, 0.0),
        "spine3": (0.0, -0.02, 0.0),
        "neck": (0.0, 0.16, -0.02),
        "head": (0.0, 0.23, 0.0),
        "jaw": (0.0, 0.21, 0.045),
    }
    for stem, point in left.items():
        if stem == "eye_smplhf":
            joints["left_eye_smplhf"] = point
            joints["right_eye_smplhf"] = _mirror(point)
            continue
        joints[f"left_{stem}"] = point
        joints[f"right_{stem}"] = _mirror(point)
    return joints


@dataclass(frozen=True)
class _Segment:
    """A capsule owned by one joint: from ``start`` to ``end`` with an elliptical cross-section
    (``radius_u`` towards the front/``up_hint``, ``radius_w`` across). ``joint_t`` is where the
    joint lies on the axis (0 = start); a zero-length segment is an ellipsoid."""

    joint: int
    start: np.ndarray
    end: np.ndarray
    radius_u: float
    radius_w: float
    rings: int
    sides: int
    joint_t: float = 0.0
    end_child: int | None = None
    blend_parent: bool = True
    length_radius: float | None = None  # ellipsoids: semi-axis along the axis


def _frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hint = np.array([0.0, 0.0, 1.0])
    if abs(np.dot(axis, hint)) > 0.9:
        hint = np.array([0.0, 1.0, 0.0])
    u = hint - np.dot(hint, axis) * axis
    u /= np.linalg.norm(u)
    return u, np.cross(axis, u)


def _capsule(segment: _Segment) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Vertices (N, 3), faces (M, 3) (local indices), axial parameter t per vertex, and the
    vertex index lists of each cylinder ring with its t."""
    start, end = segment.start, segment.end
    length = float(np.linalg.norm(end - start))
    axis = (end - start) / length if length > 1e-9 else np.array([0.0, 1.0, 0.0])
    u, w = _frame(axis)
    cap_rings = max(2, segment.rings // 4)
    body_rings = segment.rings - 2 * cap_rings
    angles = np.linspace(0.0, 2 * np.pi, segment.sides, endpoint=False)
    circle = np.cos(angles)[:, None] * u * segment.radius_u + np.sin(angles)[:, None] * w * segment.radius_w
    cap_length = segment.length_radius if segment.length_radius is not None else min(segment.radius_u, segment.radius_w)
    ring_specs: list[tuple[float, float, float]] = []  # (t, axial offset beyond the ends, scale)
    for k in range(cap_rings, 0, -1):
        theta = (np.pi / 2) * k / (cap_rings + 1)
        ring_specs.append((0.0, -cap_length * np.sin(theta), np.cos(theta)))
    for t in (np.linspace(0.0, 1.0, body_rings) if body_rings > 1 else [0.0]):
        ring_specs.append((float(t), 0.0, 1.0))
    for k in range(1, cap_rings + 1):
        theta = (np.pi / 2) * k / (cap_rings + 1)
        ring_specs.append((1.0, cap_length * np.sin(theta), np.cos(theta)))
    vertices = [start - axis * cap_length]
    params = [-1.0]
    rings = []
    for t, offset, scale in ring_specs:
        centre = start + (end - start) * t + axis * offset
        first = len(vertices)
        vertices.extend(centre + circle * scale)
        params.extend([t + (offset / max(length, 1e-9) if length > 1e-9 else 0.0)] * segment.sides)
        if offset == 0.0:
            rings.append((t, np.arange(first, first + segment.sides)))
    vertices.append(end + axis * cap_length)
    params.append(2.0)
    n = segment.sides
    faces = []
    ring_count = len(ring_specs)
    for s in range(n):
        faces.append((0, 1 + (s + 1) % n, 1 + s))
    for r in range(ring_count - 1):
        a, b = 1 + r * n, 1 + (r + 1) * n
        for s in range(n):
            s2 = (s + 1) % n
            faces.append((a + s, a + s2, b + s2))
            faces.append((a + s, b + s2, b + s))
    last = len(vertices) - 1
    base = 1 + (ring_count - 1) * n
    for s in range(n):
        faces.append((base + s, base + (s + 1) % n, last))
    return np.array(vertices), np.array(faces), np.array(params), rings


def _capsule_vertex_count(rings: int, sides: int) -> int:
    return rings * sides + 2


def _segments(joints: dict[str, tuple[float, float, float]], head_rings: int, head_sides: int,
              chest_rings: int, chest_sides: int) -> list[_Segment]:
    index = {name: i for i, name in enumerate(SMPLX_JOINT_NAMES)}
    p = {name: np.array(point, dtype=np.float64) for name, point in joints.items()}
    segments = [
        # The pelvis capsule extends as far below the pelvis joint as it reaches above it, so the
        # joint sits on its middle ring.
        _Segment(index["pelvis"], 2 * p["pelvis"] - p["spine1"], p["spine1"], 0.11, 0.16,
                 21, 26, joint_t=0.5, end_child=index["spine1"], blend_parent=False),
        _Segment(index["spine1"], p["spine1"], p["spine2"], 0.105, 0.15, 21, 26, end_child=index["spine2"]),
        _Segment(index["spine2"], p["spine2"], p["spine3"], 0.11, 0.16, 21, 26, end_child=index["spine3"]),
        _Segment(index["spine3"], p["spine3"], p["neck"], 0.115, 0.17, chest_rings, chest_sides, end_child=index["neck"],
                 length_radius=0.035),
        _Segment(index["neck"], p["neck"], p["head"], 0.055, 0.06, 14, 20, end_child=index["head"]),
        _Segment(index["head"], p["head"], p["head"] + np.array([0.0, 0.12, 0.01]), 0.095, 0.08,
                 head_rings, head_sides, length_radius=0.06),
        _Segment(index["jaw"], p["jaw"], p["jaw"], 0.04, 0.05, 10, 12, length_radius=0.03),
        _Segment(index["left_eye_smplhf"], p["left_eye_smplhf"], p["left_eye_smplhf"], 0.012, 0.012, 8, 10,
                 length_radius=0.012),
        _Segment(index["right_eye_smplhf"], p["right_eye_smplhf"], p["right_eye_smplhf"], 0.012, 0.012, 8, 10,
                 length_radius=0.012),
    ]
    for side in ("left", "right"):

        def j(stem: str) -> int:
            return index[f"{side}_{stem}"]

        def q(stem: str) -> np.ndarray:
            return p[f"{side}_{stem}"]

        toe_tip = q("foot") + np.array([0.0, 0.0, 0.08])
        hand_tip = {f: q(f"{f}3") + (q(f"{f}3") - q(f"{f}2")) * 0.85 for f in ("index", "middle", "ring", "pinky")}
        hand_tip["thumb"] = q("thumb3") + (q("thumb3") - q("thumb2")) * 0.9
        segments += [
            _Segment(j("hip"), q("hip"), q("knee"), 0.075, 0.08, 20, 20, end_child=j("knee")),
            _Segment(j("knee"), q("knee"), q("ankle"), 0.055, 0.055, 18, 18, end_child=j("ankle")),
            _Segment(j("ankle"), q("ankle"), q("foot"), 0.04, 0.045, 12, 14, end_child=j("foot")),
            _Segment(j("foot"), q("foot"), toe_tip, 0.022, 0.045, 8, 12),
            _Segment(j("collar"), q("collar"), q("shoulder"), 0.05, 0.055, 10, 14, end_child=j("shoulder")),
            _Segment(j("shoulder"), q("shoulder"), q("elbow"), 0.05, 0.05, 18, 16, end_child=j("elbow")),
            _Segment(j("elbow"), q("elbow"), q("wrist"), 0.04, 0.04, 16, 16, end_child=j("wrist")),
            _Segment(j("wrist"), q("wrist"), q("middle1"), 0.042, 0.016, 10, 16),
        ]
        for finger in ("index", "middle", "ring", "pinky", "thumb"):
            radius = 0.0095 if finger != "thumb" else 0.011
            for k in (1, 2, 3):
                end = q(f"{finger}{k + 1}") if k < 3 else hand_tip[finger]
                segments.append(
                    _Segment(j(f"{finger}{k}"), q(f"{finger}{k}"), end, radius, radius, 6, 6,
                             end_child=j(f"{finger}{k + 1}") if k < 3 else None)
                )
    return segments


def _fixed_vertex_count(segments: list[_Segment]) -> int:
    return sum(_capsule_vertex_count(s.rings, s.sides) for s in segments)


def _choose_resolutions(joints) -> tuple[int, int, int, int]:
    """Head and chest resolutions that make the body exactly SMPLX_NUM_VERTICES vertices."""
    for chest_sides in (26, 28, 30, 32):
        for chest_rings in range(21, 40):
            probe = _segments(joints, 4, 4, chest_rings, chest_sides)
            others = _fixed_vertex_count(probe) - _capsule_vertex_count(4, 4)
            remainder = SMPLX_NUM_VERTICES - others - 2
            for head_sides in range(30, 64):
                if remainder % head_sides == 0 and 24 <= remainder // head_sides <= 70:
                    return remainder // head_sides, head_sides, chest_rings, chest_sides
    raise AssertionError("no resolution reaches the SMPL-X vertex count")


def build_smplx_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Every array of an SMPL-X model file, for the procedural body."""
    rng = np.random.default_rng(seed)
    joints = _joint_positions()
    head_rings, head_sides, chest_rings, chest_sides = _choose_resolutions(joints)
    segments = _segments(joints, head_rings, head_sides, chest_rings, chest_sides)
    num_joints = len(SMPLX_JOINT_NAMES)
    vertices, faces = [], []
    weights_rows = []
    regressor = np.zeros((num_joints, SMPLX_NUM_VERTICES), dtype=np.float64)
    offset = 0
    for segment in segments:
        v, f, t, rings = _capsule(segment)
        vertices.append(v)
        faces.append(f + offset)
        w = np.zeros((len(v), num_joints))
        w[:, segment.joint] = 1.0
        parent = SMPLX_PARENTS[segment.joint]
        if segment.blend_parent and parent >= 0:
            w[:, parent] += 0.5 * np.clip(1.0 - t / 0.25, 0.0, 1.0)
        if segment.end_child is not None:
            w[:, segment.end_child] += 0.5 * np.clip((t - 0.75) / 0.25, 0.0, 1.0)
        if SMPLX_JOINT_NAMES[segment.joint] == "pelvis":
            # The lower pelvis blends into the thigh of its side.
            lower = np.clip((segment.joint_t - t) / segment.joint_t, 0.0, 1.0)
            side_weight = np.clip(np.abs(v[:, 0]) / 0.09, 0.0, 1.0) * 0.6 * lower
            hip = np.where(v[:, 0] >= 0, SMPLX_JOINT_NAMES.index("left_hip"), SMPLX_JOINT_NAMES.index("right_hip"))
            w[np.arange(len(v)), hip] += side_weight
        weights_rows.append(w / w.sum(axis=1, keepdims=True))
        # The joint is the centre of the ring(s) at its axial position (all vertices for an ellipsoid).
        if np.linalg.norm(segment.end - segment.start) < 1e-9:
            regressor[segment.joint, offset:offset + len(v)] = 1.0 / len(v)
        else:
            ring_ts = np.array([rt for rt, _ in rings])
            k = int(np.argmin(np.abs(ring_ts - segment.joint_t)))
            assert abs(ring_ts[k] - segment.joint_t) < 1e-9, "a joint must sit on a ring"
            regressor[segment.joint, offset + rings[k][1]] = 1.0 / len(rings[k][1])
        offset += len(v)
    v_template = np.concatenate(vertices)
    f = np.concatenate(faces).astype(np.uint32)
    weights = np.concatenate(weights_rows)
    assert v_template.shape == (SMPLX_NUM_VERTICES, 3), v_template.shape

    num_components = SMPLX_SHAPE_SPACE_DIM + SMPLX_EXPRESSION_SPACE_DIM
    # Smooth shape directions: per component a small affine field plus a bulge along the
    # segment normals, decaying with the component index like a PCA spectrum.
    centred = v_template - v_template.mean(axis=0)
    radial = centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-9)
    shapedirs = np.empty((SMPLX_NUM_VERTICES, 3, num_components), dtype=np.float32)
    for k in range(num_components):
        decay = 1.0 / (1.0 + k)
        affine = rng.normal(scale=0.03 * decay, size=(3, 3))
        bulge = rng.normal(scale=0.004 * decay)
        shapedirs[:, :, k] = centred @ affine.T + radial * bulge
    # Pose correctives: low-rank, a few millimetres per radian.
    basis = rng.normal(size=(SMPLX_NUM_VERTICES * 3, 6)) * 0.002
    mixing = rng.normal(size=(6, NUM_POSE_BASIS))
    posedirs = (basis @ mixing).reshape(SMPLX_NUM_VERTICES, 3, NUM_POSE_BASIS).astype(np.float32)

    hand_components = []
    for _ in range(2):
        q, _ = np.linalg.qr(rng.normal(size=(45, 45)))
        hand_components.append(q.astype(np.float32))
    face_count = len(f)
    lmk_bary = rng.random((51, 3))
    dynamic_bary = rng.random((79, 17, 3))
    kintree = np.array([list(SMPLX_PARENTS), list(range(num_joints))], dtype=np.int64)
    kintree[0, 0] = 4294967295  # what SMPL-family files store for "no parent"
    return {
        "v_template": v_template.astype(np.float32),
        "f": f,
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": regressor.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": kintree,
        "hands_componentsl": hand_components[0],
        "hands_componentsr": hand_components[1],
        "hands_meanl": rng.normal(scale=0.1, size=45).astype(np.float32),
        "hands_meanr": rng.normal(scale=0.1, size=45).astype(np.float32),
        "lmk_faces_idx": rng.integers(0, face_count, size=51).astype(np.int64),
        "lmk_bary_coords": (lmk_bary / lmk_bary.sum(axis=1, keepdims=True)).astype(np.float32),
        "dynamic_lmk_faces_idx": rng.integers(0, face_count, size=(79, 17)).astype(np.int64),
        "dynamic_lmk_bary_coords": (dynamic_bary / dynamic_bary.sum(axis=2, keepdims=True)).astype(np.float32),
    }


def write_smplx_model_file(path: str | Path, seed: int = 0) -> Path:
    """Write the procedural SMPL-X model file to ``path`` and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = build_smplx_arrays(seed)
    with open(path, "wb") as stream:
        np.savez(stream, **arrays)
    return path


# The name other tests call it by.
write_model_file = write_smplx_model_file


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/support/smplx_model_file.py OUT.npz")
    print(write_smplx_model_file(sys.argv[1]))
