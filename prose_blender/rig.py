"""The engine's rig description (``python -m engine rig ... --out rig.npz``), read and checked.
No bpy here: the body builder turns a :class:`Rig` into Blender data."""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .settings import ProseError

RIG_SCHEMA_VERSION = 1

_REQUIRED_KEYS = (
    "schema_version", "kind", "joint_names", "parents", "rest_joint_frames", "bone_tails",
    "model_to_world", "vertices", "faces", "weight_vertex", "weight_joint", "weight_value",
    "shape", "shape_names", "region_names", "region_offsets", "region_vertex_ids",
)


@dataclass(frozen=True)
class Rig:
    """One body's mesh, skeleton, skinning and regions, in the model frame.

    joint_names: (J,) parents: (J,) (-1 for the root) rest_joint_frames: (J, 4, 4)
    bone_tails: (J, 3) model_to_world: (3, 3) vertices: (V, 3) faces: (F, 3)
    weight_vertex / weight_joint / weight_value: (W,) sparse skinning weights
    shape: (S,) shape_names: (S,) region_names: (R,) region_offsets: (R + 1,)
    region_vertex_ids: (region_offsets[-1],)
    """

    kind: str
    joint_names: tuple[str, ...]
    parents: np.ndarray
    rest_joint_frames: np.ndarray
    bone_tails: np.ndarray
    model_to_world: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    weight_vertex: np.ndarray
    weight_joint: np.ndarray
    weight_value: np.ndarray
    shape: np.ndarray
    shape_names: tuple[str, ...]
    region_names: tuple[str, ...]
    region_offsets: np.ndarray
    region_vertex_ids: np.ndarray

    def region_vertices(self) -> dict[str, np.ndarray]:
        """Region name -> vertex ids."""
        return {
            name: self.region_vertex_ids[self.region_offsets[i]: self.region_offsets[i + 1]]
            for i, name in enumerate(self.region_names)
        }


def load_rig(path: str | Path) -> Rig:
    """Read and check a rig NPZ; a bad file raises :class:`ProseError` naming the problem."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        # A file cut short is not a zip archive (or ends inside one): never a traceback.
        raise ProseError(f"Cannot read the rig file {path}: {error}") from error
    missing = [key for key in _REQUIRED_KEYS if key not in arrays]
    if missing:
        raise ProseError(f"The rig file {path} lacks {', '.join(missing)}: regenerate it with 'python -m engine rig'")
    version = int(arrays["schema_version"])
    if version != RIG_SCHEMA_VERSION:
        raise ProseError(f"The rig file {path} has schema_version {version}, this add-on reads {RIG_SCHEMA_VERSION}: update the add-on or the engine")
    joint_names = tuple(str(n) for n in arrays["joint_names"])
    count = len(joint_names)
    rig = Rig(
        kind=str(arrays["kind"]),
        joint_names=joint_names,
        parents=arrays["parents"].astype(np.int64),
        rest_joint_frames=arrays["rest_joint_frames"].astype(np.float64),
        bone_tails=arrays["bone_tails"].astype(np.float64),
        model_to_world=arrays["model_to_world"].astype(np.float64),
        vertices=arrays["vertices"].astype(np.float64),
        faces=arrays["faces"].astype(np.int64),
        weight_vertex=arrays["weight_vertex"].astype(np.int64),
        weight_joint=arrays["weight_joint"].astype(np.int64),
        weight_value=arrays["weight_value"].astype(np.float64),
        shape=arrays["shape"].astype(np.float64),
        shape_names=tuple(str(n) for n in arrays["shape_names"]),
        region_names=tuple(str(n) for n in arrays["region_names"]),
        region_offsets=arrays["region_offsets"].astype(np.int64),
        region_vertex_ids=arrays["region_vertex_ids"].astype(np.int64),
    )
    problems = []
    if rig.parents.shape != (count,) or any(p >= i for i, p in enumerate(rig.parents) if p >= 0):
        problems.append("parents must list each joint's parent before the joint")
    if rig.rest_joint_frames.shape != (count, 4, 4):
        problems.append(f"rest_joint_frames has shape {rig.rest_joint_frames.shape}, expected ({count}, 4, 4)")
    if rig.bone_tails.shape != (count, 3):
        problems.append("bone_tails must be (J, 3)")
    if rig.model_to_world.shape != (3, 3):
        problems.append("model_to_world must be 3x3")
    if rig.vertices.ndim != 2 or rig.vertices.shape[1] != 3:
        problems.append("vertices must be (V, 3)")
    if rig.faces.ndim != 2 or rig.faces.shape[1] != 3 or (rig.faces.size and rig.faces.max() >= len(rig.vertices)):
        problems.append("faces must be (F, 3) indices into vertices")
    if not (rig.weight_vertex.shape == rig.weight_joint.shape == rig.weight_value.shape):
        problems.append("weight_vertex, weight_joint and weight_value must have one length")
    elif rig.weight_joint.size and (rig.weight_joint.max() >= count or rig.weight_vertex.max() >= len(rig.vertices)):
        problems.append("skinning weights name a joint or vertex that does not exist")
    if rig.region_offsets.shape != (len(rig.region_names) + 1,) or rig.region_offsets[-1] != len(rig.region_vertex_ids):
        problems.append("region_offsets must have one entry per region plus one, ending at len(region_vertex_ids)")
    if problems:
        raise ProseError(f"The rig file {path} is malformed: " + "; ".join(problems))
    return rig
