"""SMPL-X motion (AMASS clips) onto another skeleton (Anny) by anatomy, and back.

numpy only (no bpy, no torch), so a benchmark can load this file by itself.

SMPL-X side: the 55 joints in the model's order and the kinematic tree, with rest joint
positions either exact (from the user's model file: ``J_regressor @ v_template``) or
:data:`CANONICAL_REST_JOINTS`, a T-pose written by this project from public anatomical facts
(approximate offsets, not the licensed model). SMPL-X's rest frames are unrotated, so a clip's
axis-angles chain into world rotations ``G``. An AMASS clip lives in a Z-up world: its root
orientation already stands the Y-up model up, so the delta of a joint from the *standing* rest
pose is ``D = G @ M^T`` with ``M`` SMPL-X's model-to-world (Y up -> Z up).

Target side (Anny, Z up, facing -Y like standing SMPL-X): each mapped bone's world delta is
``D_j @ A_b``, with ``A_b`` the smallest rotation taking the target's rest segment direction
onto SMPL-X's standing rest direction of the corresponding bone (so the A-pose vs T-pose
difference of the rest poses is accounted for); unmapped bones follow their parent rigidly.
The root translation is SMPL-X's pelvis position scaled by the ratio of pelvis heights, the
floor kept at the floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SMPLX_JOINTS: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "jaw", "left_eye_smplhf", "right_eye_smplhf",
    *(f"{side}_{finger}{k}" for side in ("left", "right")
      for finger in ("index", "middle", "pinky", "ring", "thumb") for k in (1, 2, 3)),
)
SMPLX_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)
SMPLX_MODEL_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def _canonical_rest_joints() -> np.ndarray:
    """An adult T-pose in SMPL-X's frame (Y up, facing +Z, left on +X), metres."""
    left = {
        "hip": (0.07, -0.44, 0.0), "knee": (0.10, -0.83, 0.01), "ankle": (0.09, -1.22, -0.03),
        "foot": (0.10, -1.27, 0.09), "collar": (0.07, 0.10, -0.01), "shoulder": (0.18, 0.12, -0.02),
        "elbow": (0.44, 0.11, -0.03), "wrist": (0.69, 0.11, -0.02), "eye_smplhf": (0.032, 0.30, 0.085),
        "thumb1": (0.715, 0.098, 0.030), "thumb2": (0.740, 0.094, 0.058), "thumb3": (0.762, 0.091, 0.076),
    }
    bases = {"index": (0.785, 0.112, 0.032, 0.036, 0.024), "middle": (0.792, 0.112, 0.008, 0.040, 0.027),
             "ring": (0.786, 0.110, -0.015, 0.037, 0.025), "pinky": (0.772, 0.106, -0.035, 0.029, 0.019)}
    for finger, (x, y, z, first, second) in bases.items():
        left[f"{finger}1"] = (x, y, z)
        left[f"{finger}2"] = (x + first, y - 0.002, z)
        left[f"{finger}3"] = (x + first + second, y - 0.004, z)
    joints = {"pelvis": (0.0, -0.35, 0.0), "spine1": (0.0, -0.24, -0.01), "spine2": (0.0, -0.12, 0.0),
              "spine3": (0.0, -0.02, 0.0), "neck": (0.0, 0.16, -0.02), "head": (0.0, 0.23, 0.0),
              "jaw": (0.0, 0.21, 0.045)}
    for stem, (x, y, z) in left.items():
        joints[f"left_{stem}"] = (x, y, z)
        joints[f"right_{stem}"] = (-x, y, z)
    return np.array([joints[name] for name in SMPLX_JOINTS], dtype=np.float64)


CANONICAL_REST_JOINTS = _canonical_rest_joints()

# Target bone <- (SMPL-X joint whose rotation drives it, SMPL-X child joint giving the bone's
# direction, target bone whose head ends the segment). The Anny names are its own bones.
_FINGERS = {"thumb": "1", "index": "2", "middle": "3", "ring": "4", "pinky": "5"}


def _anny_map() -> dict[str, tuple[str, str | None, str | None]]:
    table = {
        "root": ("pelvis", None, None),
        "neck01": ("neck", "head", "head"),
        "head": ("head", None, None),
    }
    for side, s in (("left", "L"), ("right", "R")):
        table.update({
            f"upperleg01.{s}": (f"{side}_hip", f"{side}_knee", f"lowerleg01.{s}"),
            f"lowerleg01.{s}": (f"{side}_knee", f"{side}_ankle", f"foot.{s}"),
            f"foot.{s}": (f"{side}_ankle", f"{side}_foot", f"toe3-1.{s}"),
            f"clavicle.{s}": (f"{side}_collar", f"{side}_shoulder", f"upperarm01.{s}"),
            f"upperarm01.{s}": (f"{side}_shoulder", f"{side}_elbow", f"lowerarm01.{s}"),
            f"lowerarm01.{s}": (f"{side}_elbow", f"{side}_wrist", f"wrist.{s}"),
            f"wrist.{s}": (f"{side}_wrist", f"{side}_middle1", f"finger3-1.{s}"),
        })
        for finger, number in _FINGERS.items():
            for k in (1, 2, 3):
                child = (f"{side}_{finger}{k + 1}", f"finger{number}-{k + 1}.{s}") if k < 3 else (None, None)
                table[f"finger{number}-{k}.{s}"] = (f"{side}_{finger}{k}", *child)
    return table


ANNY_MAP = _anny_map()

#: Chains of unequal bone counts mapped as a whole: (SMPL-X joints, target bones), each listed
#: from the root end to the joint / bone head that ends the chain. SMPL-X's three spine joints
#: span Anny's five spine bones: each target bone takes the direction of the SMPL-X polyline
#: over the same fraction of the chain's rest length (its chord), its twist from the SMPL-X
#: segments it overlaps (weighted by the overlap), and the whole chain then turns so its end
#: points where SMPL-X's does.
ANNY_CHAINS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("spine1", "spine2", "spine3", "neck"), ("spine05", "spine04", "spine03", "spine02", "spine01", "neck01")),
)

#: Bones compared by the bone-direction measure: name -> (SMPL-X start, end), (Anny start, end).
MEASURED_BONES = {
    f"{side} {bone}": pair
    for side, s in (("left", "L"), ("right", "R"))
    for bone, pair in (
        ("upper arm", ((f"{side}_shoulder", f"{side}_elbow"), (f"upperarm01.{s}", f"lowerarm01.{s}"))),
        ("forearm", ((f"{side}_elbow", f"{side}_wrist"), (f"lowerarm01.{s}", f"wrist.{s}"))),
        ("thigh", ((f"{side}_hip", f"{side}_knee"), (f"upperleg01.{s}", f"lowerleg01.{s}"))),
        ("shin", ((f"{side}_knee", f"{side}_ankle"), (f"lowerleg01.{s}", f"foot.{s}"))),
    )
}
MEASURED_BONES["spine"] = (("spine1", "neck"), ("spine05", "neck01"))
MEASURED_BONES["neck"] = (("neck", "head"), ("neck01", "head"))


def axis_angle_to_matrix(vectors: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angles -> (..., 3, 3)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    angle = np.linalg.norm(vectors, axis=-1, keepdims=True)
    axis = vectors / np.maximum(angle, 1e-12)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)
    a = angle[..., None]
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k)


def matrix_to_axis_angle(matrices: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 3) axis-angles (through quaternions: stable near pi)."""
    m = np.asarray(matrices, dtype=np.float64)
    w = np.sqrt(np.maximum(0.0, 1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2])) / 2
    x = np.sqrt(np.maximum(0.0, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2])) / 2
    y = np.sqrt(np.maximum(0.0, 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2])) / 2
    z = np.sqrt(np.maximum(0.0, 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2])) / 2
    x = np.copysign(x, m[..., 2, 1] - m[..., 1, 2])
    y = np.copysign(y, m[..., 0, 2] - m[..., 2, 0])
    z = np.copysign(z, m[..., 1, 0] - m[..., 0, 1])
    vector = np.stack([x, y, z], -1)
    sin = np.linalg.norm(vector, axis=-1, keepdims=True)
    angle = 2 * np.arctan2(sin, w[..., None])
    return vector / np.maximum(sin, 1e-12) * angle


def _align(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction ``u`` onto direction ``v``."""
    u = u / np.linalg.norm(u)
    v = v / np.linalg.norm(v)
    axis = np.cross(u, v)
    sin, cos = np.linalg.norm(axis), float(np.dot(u, v))
    if sin < 1e-9:
        if cos > 0:
            return np.eye(3)
        other = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        axis = np.cross(u, other)
        return axis_angle_to_matrix(axis / np.linalg.norm(axis) * np.pi)
    return axis_angle_to_matrix(axis / sin * np.arctan2(sin, cos))


def _align_many(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(T, 3, 3): per row, the smallest rotation taking ``u`` onto ``v`` (both (T, 3))."""
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    axis = np.cross(u, v)
    sin = np.linalg.norm(axis, axis=-1, keepdims=True)
    cos = (u * v).sum(-1, keepdims=True)
    out = axis_angle_to_matrix(axis / np.maximum(sin, 1e-12) * np.arctan2(sin, cos))
    for t in np.flatnonzero((sin[:, 0] < 1e-9) & (cos[:, 0] < 0)):
        out[t] = _align(u[t], v[t])
    return out


def matrix_to_quaternion(matrices: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 4) unit quaternions (w, x, y, z), w >= 0."""
    vector = matrix_to_axis_angle(matrices)
    angle = np.linalg.norm(vector, axis=-1, keepdims=True)
    axis = vector / np.maximum(angle, 1e-12)
    return np.concatenate([np.cos(angle / 2), axis * np.sin(angle / 2)], -1)


def quaternion_to_matrix(quaternions: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (w, x, y, z), any length -> (..., 3, 3)."""
    q = np.asarray(quaternions, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def _blend(rotations: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(T, K, 3, 3) rotations, (K,) weights -> (T, 3, 3) their weighted mean (quaternions
    summed on the heaviest one's hemisphere)."""
    q = matrix_to_quaternion(rotations)
    heaviest = q[:, int(np.argmax(weights))]
    q = q * np.where((q * heaviest[:, None]).sum(-1, keepdims=True) < 0, -1.0, 1.0)
    return quaternion_to_matrix((q * np.asarray(weights)[None, :, None]).sum(1))


class ChainMap:
    """A chain of ``n`` source segments onto ``m`` target segments by rest length.

    ``source_rest`` (n + 1, 3) and ``target_rest`` (m + 1, 3): the chain's joint positions at
    rest, in one world frame (Z up, facing -Y). :meth:`__call__` turns the source segments'
    world deltas (rest -> posed) into the target segments' world deltas."""

    def __init__(self, source_rest: np.ndarray, target_rest: np.ndarray):
        self.source_offsets = np.diff(np.asarray(source_rest, dtype=np.float64), axis=0)
        self.target_offsets = np.diff(np.asarray(target_rest, dtype=np.float64), axis=0)
        source_lengths = np.linalg.norm(self.source_offsets, axis=-1)
        target_lengths = np.linalg.norm(self.target_offsets, axis=-1)
        self.source_fractions = np.concatenate([[0.0], np.cumsum(source_lengths)]) / source_lengths.sum()
        target_fractions = np.concatenate([[0.0], np.cumsum(target_lengths)]) / target_lengths.sum()
        self.intervals = np.stack([target_fractions[:-1], target_fractions[1:]], -1)
        n = len(self.source_offsets)
        self.weights = np.zeros((len(self.target_offsets), n))
        for b, (g0, g1) in enumerate(self.intervals):
            for k in range(n):
                low, high = self.source_fractions[k], self.source_fractions[k + 1]
                self.weights[b, k] = max(0.0, min(g1, high) - max(g0, low))
        self.weights /= self.weights.sum(1, keepdims=True)
        rest_points = np.concatenate([np.zeros((1, 3)), np.cumsum(self.source_offsets, 0)])[None]
        rest_chords = self._chords(rest_points)[0]
        self.correction = np.array([_align(u, r) for u, r in zip(self.target_offsets, rest_chords)])

    def _at(self, points: np.ndarray, fraction: float) -> np.ndarray:
        k = min(int(np.searchsorted(self.source_fractions, fraction, side="right")) - 1, len(self.source_offsets) - 1)
        k = max(k, 0)
        low, high = self.source_fractions[k], self.source_fractions[k + 1]
        t = (fraction - low) / max(high - low, 1e-12)
        return points[:, k] + t * (points[:, k + 1] - points[:, k])

    def _chords(self, points: np.ndarray) -> np.ndarray:
        """(T, m, 3): the source polyline ``points`` (T, n + 1, 3) over each target interval."""
        return np.stack([self._at(points, g1) - self._at(points, g0) for g0, g1 in self.intervals], 1)

    def __call__(self, source_deltas: np.ndarray) -> np.ndarray:
        """(T, n, 3, 3) source world deltas -> (T, m, 3, 3) target world deltas."""
        frames = len(source_deltas)
        moved = np.einsum("tkij,kj->tki", source_deltas, self.source_offsets)
        points = np.concatenate([np.zeros((frames, 1, 3)), np.cumsum(moved, 1)], 1)
        chords = self._chords(points)
        out = np.empty((frames, len(self.target_offsets), 3, 3))
        for b, offset in enumerate(self.target_offsets):
            base = _blend(source_deltas, self.weights[b]) @ self.correction[b]
            out[:, b] = _align_many(base @ offset, chords[:, b]) @ base
        end = np.einsum("tbij,bj->ti", out, self.target_offsets)
        return _align_many(end, points[:, -1] - points[:, 0])[:, None] @ out


def smplx_world_rotations(poses: np.ndarray, parents=SMPLX_PARENTS) -> np.ndarray:
    """(T, 3K) axis-angles -> (T, K, 3, 3) world rotations (clip frame), K <= 55."""
    count = poses.shape[1] // 3
    local = axis_angle_to_matrix(poses.reshape(len(poses), count, 3))
    world = np.empty_like(local)
    for j in range(count):
        world[:, j] = local[:, j] if parents[j] < 0 else world[:, parents[j]] @ local[:, j]
    return world


def smplx_world_joints(poses: np.ndarray, trans: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """(T, K, 3) joint positions (clip frame) of SMPL-X poses on a skeleton."""
    world = smplx_world_rotations(poses)
    count = world.shape[1]
    positions = np.empty((len(poses), count, 3))
    for j in range(count):
        p = SMPLX_PARENTS[j]
        if p < 0:
            positions[:, j] = rest_joints[j] + trans
        else:
            positions[:, j] = positions[:, p] + world[:, p] @ (rest_joints[j] - rest_joints[p])
    return positions


@dataclass(frozen=True)
class TargetSkeleton:
    """A skeleton to retarget onto: names, parents (before children), rest frames (J, 4, 4) in
    its model frame (Z up, facing -Y, metres) and the height of its floor in that frame."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    rest: np.ndarray
    floor_z: float


def anny_floor_z(rest: np.ndarray, names) -> float:
    """The floor under a skeleton: its lowest toe or foot joint."""
    rows = [i for i, n in enumerate(names) if n.startswith(("toe", "foot"))] or list(range(len(names)))
    return float(rest[rows, 2, 3].min())


class Retarget:
    """SMPL-X clips -> target local rotations (rest frames) and root translation (model frame),
    and back (:meth:`inverse`)."""

    def __init__(self, target: TargetSkeleton, rest_joints: np.ndarray | None = None, table=None, chains=None):
        self.target = target
        self.rest_joints = CANONICAL_REST_JOINTS if rest_joints is None else np.asarray(rest_joints, dtype=np.float64)
        table = ANNY_MAP if table is None else table
        chains = ANNY_CHAINS if chains is None else chains
        index = {name: i for i, name in enumerate(target.names)}
        smplx = {name: i for i, name in enumerate(SMPLX_JOINTS)}
        heads = target.rest[:, :3, 3]
        standing = self.rest_joints @ SMPLX_MODEL_TO_WORLD.T
        self.driver = np.full(len(target.names), -1)
        self.correction = np.repeat(np.eye(3)[None], len(target.names), 0)
        # SMPL-X joint -> (target bone, target bone ending its segment or -1, SMPL-X child or -1)
        self.source: dict[int, tuple[int, int, int]] = {}
        previous: dict[str, np.ndarray] = {}
        for bone, (joint, child, end) in table.items():
            if bone not in index or joint not in smplx:
                continue
            b = index[bone]
            self.driver[b] = smplx[joint]
            if child is not None and end in index and child in smplx:
                correction = _align(heads[index[end]] - heads[b], standing[smplx[child]] - standing[smplx[joint]])
                previous[bone.rsplit("-", 1)[0]] = correction
                self.source[smplx[joint]] = (b, index[end], smplx[child])
            else:  # a finger's last bone turns like the one before it
                correction = previous.get(bone.rsplit("-", 1)[0], np.eye(3))
                self.source[smplx[joint]] = (b, -1, -1)
            self.correction[b] = correction
        # chains: (SMPL-X joints, target bones, forward map, inverse map)
        self.chains = []
        for joints, bones in chains:
            if not all(j in smplx for j in joints) or not all(b in index for b in bones):
                continue
            j_rows = [smplx[j] for j in joints]
            b_rows = [index[b] for b in bones]
            self.chains.append((j_rows, b_rows, ChainMap(standing[j_rows], heads[b_rows]), ChainMap(heads[b_rows], standing[j_rows])))
            self.driver[b_rows[:-1]] = -2
        pelvis = smplx["pelvis"]
        feet = [smplx["left_foot"], smplx["right_foot"]]
        self.smplx_floor = float(standing[feet, 2].min())
        self.smplx_pelvis_height = float(standing[pelvis, 2]) - self.smplx_floor
        self.target_root_height = float(heads[0, 2]) - target.floor_z
        self.scale = self.target_root_height / self.smplx_pelvis_height

    def __call__(self, poses: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T, 3K) axis-angles and (T, 3) trans of an AMASS clip (Z-up world) -> (T, J, 3, 3)
        local rotations and (T, 3) root translations of the target."""
        poses = np.asarray(poses, dtype=np.float64)
        count = poses.shape[1] // 3
        world = smplx_world_rotations(poses)
        delta_smplx = world @ SMPLX_MODEL_TO_WORLD.T
        rest = self.target.rest[:, :3, :3]
        frames = len(poses)
        chained = {}
        for j_rows, b_rows, forward, _ in self.chains:
            deltas = forward(delta_smplx[:, j_rows[:-1]])
            chained.update({b: deltas[:, k] for k, b in enumerate(b_rows[:-1])})
        delta = np.empty((frames, len(self.target.names), 3, 3))
        local = np.empty_like(delta)
        for b, parent in enumerate(self.target.parents):
            parent_delta = np.eye(3) if parent < 0 else delta[:, parent]
            j = self.driver[b]
            if b in chained:
                delta[:, b] = chained[b]
            else:
                delta[:, b] = delta_smplx[:, j] @ self.correction[b] if 0 <= j < count else parent_delta
            local[:, b] = rest[b].T @ np.swapaxes(parent_delta, -1, -2) @ delta[:, b] @ rest[b]
        pelvis = self.rest_joints[0] + np.asarray(trans, dtype=np.float64)  # AMASS world
        target = self.scale * pelvis
        target[:, 2] = self.target.floor_z + self.scale * (pelvis[:, 2] - self.smplx_floor_in_clip())
        root = target - self.target.rest[0, :3, 3]
        return local, root

    def inverse(self, local: np.ndarray, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The target's (T, J, 3, 3) local rotations and (T, 3) root translations -> an AMASS
        clip: (T, 165) axis-angles (root orientation in the Z-up clip frame) and (T, 3) trans.
        Each mapped SMPL-X joint turns like its target bone, then swings so its segment points
        along the target's (through any unmapped bones between); the spine by the chain map;
        unmapped joints (toes, jaw, eyes) stay at rest."""
        local = np.asarray(local, dtype=np.float64)
        frames = len(local)
        rest = self.target.rest[:, :3, :3]
        delta = np.empty_like(local)
        for b, parent in enumerate(self.target.parents):
            parent_delta = np.eye(3) if parent < 0 else delta[:, parent]
            delta[:, b] = parent_delta @ rest[b] @ local[:, b] @ rest[b].T
        heads = target_world(local, np.zeros((frames, 3)), self.target)
        standing = self.rest_joints @ SMPLX_MODEL_TO_WORLD.T
        chained = {}
        for j_rows, b_rows, _, backward in self.chains:
            deltas = backward(delta[:, b_rows[:-1]])
            chained.update({j: deltas[:, k] for k, j in enumerate(j_rows[:-1])})
        world = np.empty((frames, len(SMPLX_JOINTS), 3, 3))
        for j, parent in enumerate(SMPLX_PARENTS):
            if j in chained:
                d = chained[j]
            elif j in self.source:
                b, end, child = self.source[j]
                d = delta[:, b] @ self.correction[b].T
                if end >= 0:
                    rest_offset = standing[child] - standing[j]
                    d = _align_many(d @ rest_offset, heads[:, end] - heads[:, b]) @ d
            else:
                d = world[:, parent] @ SMPLX_MODEL_TO_WORLD.T
            world[:, j] = d @ SMPLX_MODEL_TO_WORLD
        local_smplx = world.copy()
        for j, parent in enumerate(SMPLX_PARENTS):
            if parent >= 0:
                local_smplx[:, j] = np.swapaxes(world[:, parent], -1, -2) @ world[:, j]
        poses = matrix_to_axis_angle(local_smplx).reshape(frames, -1)
        target = self.target.rest[0, :3, 3] + np.asarray(root, dtype=np.float64)
        pelvis = target / self.scale
        pelvis[:, 2] = self.smplx_floor_in_clip() + (target[:, 2] - self.target.floor_z) / self.scale
        return poses, pelvis - self.rest_joints[0]

    def smplx_floor_in_clip(self) -> float:
        """AMASS clips stand on z = 0."""
        return 0.0


def target_world(local: np.ndarray, root: np.ndarray, target: TargetSkeleton) -> np.ndarray:
    """(T, J, 3) joint positions of the target posed by ``local`` and ``root`` (model frame)."""
    rest = target.rest
    frames = len(local)
    world = np.empty((frames, len(target.names), 4, 4))
    for b, parent in enumerate(target.parents):
        transform = np.repeat(np.eye(4)[None], frames, 0)
        transform[:, :3, :3] = local[:, b]
        if parent < 0:
            transform[:, :3, 3] = root
            world[:, b] = rest[b] @ transform
        else:
            world[:, b] = world[:, parent] @ np.linalg.inv(rest[parent]) @ rest[b] @ transform
    return world[:, :, :3, 3]


def bone_direction_errors(poses, trans, retarget: Retarget, smplx_rest=None) -> dict[str, np.ndarray]:
    """Angle (degrees) between each measured bone of the SMPL-X body and of the retargeted
    target, per frame: {bone: (T,)}."""
    smplx_rest = retarget.rest_joints if smplx_rest is None else smplx_rest
    joints = smplx_world_joints(np.asarray(poses)[:, :66], np.asarray(trans), smplx_rest)
    local, root = retarget(poses, trans)
    return _direction_errors(joints, target_world(local, root, retarget.target), retarget.target.names)


def inverse_bone_direction_errors(local, root, retarget: Retarget) -> dict[str, np.ndarray]:
    """Angle (degrees) between each measured bone of the target posed by ``local``/``root`` and
    of the SMPL-X body its inverse retarget gives, per frame: {bone: (T,)}."""
    poses, trans = retarget.inverse(local, root)
    joints = smplx_world_joints(poses[:, :66], trans, retarget.rest_joints)
    target = target_world(np.asarray(local, dtype=np.float64), np.asarray(root, dtype=np.float64), retarget.target)
    return _direction_errors(joints, target, retarget.target.names)


def _direction_errors(joints, target, names) -> dict[str, np.ndarray]:
    s_index = {n: i for i, n in enumerate(SMPLX_JOINTS)}
    t_index = {n: i for i, n in enumerate(names)}
    out = {}
    for bone, ((s0, s1), (t0, t1)) in MEASURED_BONES.items():
        a = joints[:, s_index[s1]] - joints[:, s_index[s0]]
        b = target[:, t_index[t1]] - target[:, t_index[t0]]
        cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        out[bone] = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    return out


def sample_target_poses(target: TargetSkeleton, count: int, seed: int = 0, scale: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Generated poses of the target skeleton: every bone turned at random (``scale`` radians
    per axis), the root turned and moved: (count, J, 3, 3) local rotations, (count, 3) root
    translations."""
    rng = np.random.default_rng(seed)
    local = axis_angle_to_matrix(rng.normal(scale=scale, size=(count, len(target.names), 3)))
    local[:, 0] = axis_angle_to_matrix(rng.normal(scale=0.3, size=(count, 3)))
    root = np.column_stack([rng.normal(scale=0.5, size=(count, 2)), rng.normal(scale=0.05, size=count)])
    return local, root


def sample_poses(count: int, seed: int = 0, scale: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """Generated SMPL-X clip poses (AMASS-style, standing in Z up): (count, 165), (count, 3)."""
    rng = np.random.default_rng(seed)
    poses = np.zeros((count, 165))
    poses[:, 3:66] = rng.normal(scale=scale, size=(count, 63))
    poses[:, 75:] = rng.normal(scale=0.2, size=(count, 90))
    stand = axis_angle_to_matrix(np.array([np.pi / 2, 0, 0]))
    turn = axis_angle_to_matrix(rng.normal(scale=0.3, size=(count, 3)))
    poses[:, :3] = matrix_to_axis_angle(stand @ turn)
    trans = np.column_stack([rng.normal(scale=0.5, size=(count, 2)), 0.95 + rng.normal(scale=0.05, size=count)])
    return poses, trans
