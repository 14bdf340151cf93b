"""The rig description: everything the Blender side needs to build a body's mesh and armature,
written by the engine (Blender's Python has no torch). Format: an ``.npz`` file read with
``numpy.load(path, allow_pickle=False)``; documented in ``schemas/rig.md``."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from engine.errors import EngineError
from engine.files import atomic_file

RIG_SCHEMA_VERSION = 1

# Bone length used where a joint has no child to aim at (root with co-located children).
ROOT_BONE_LENGTH = 0.1
MIN_BONE_LENGTH = 0.01


class RigError(EngineError):
    """A rig file that cannot be used."""


@dataclass(frozen=True)
class Rig:
    """One body's rig (J joints, V vertices, F faces, S shape values, R regions, N weights).

    schema_version: int; kind: "anny" | "smplx".
    joint_names: (J,) str; parents: (J,) int32, -1 for the root.
    rest_joint_frames: (J, 4, 4) float64, model frame; a Blender bone gets
        ``edit_bone.matrix = rest_joint_frames[j]`` (its Y axis points head -> tail).
    bone_tails: (J, 3) float64, model frame: head + length * frame Y axis.
    model_to_world: (3, 3) float64 (the armature object's rotation in Blender).
    vertices: (V, 3) float32 rest vertices, model frame, for ``shape``.
    faces: (F, 3) int32.
    weight_vertex, weight_joint: (N,) int32; weight_value: (N,) float32 (non-zero weights).
    shape: (S,) float32; shape_names: (S,) str.
    region_names: (R,) str (every name of ``engine.body.regions.MESH_REGIONS``);
    region_offsets: (R + 1,) int64; region_vertex_ids: (region_offsets[-1],) int32, the vertex
        set of region r being ``region_vertex_ids[region_offsets[r]:region_offsets[r + 1]]``.
    """

    schema_version: int
    kind: str
    joint_names: np.ndarray
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
    shape_names: np.ndarray
    region_names: np.ndarray
    region_offsets: np.ndarray
    region_vertex_ids: np.ndarray

    def region_vertex_set(self, region: str) -> np.ndarray:
        index = [str(n) for n in self.region_names].index(region)
        return self.region_vertex_ids[self.region_offsets[index]:self.region_offsets[index + 1]]

    def validate(self) -> None:
        """Raise RigError naming the first inconsistency."""
        if self.schema_version != RIG_SCHEMA_VERSION:
            raise RigError(
                f"rig schema_version {self.schema_version} is not {RIG_SCHEMA_VERSION}; "
                "re-export the rig with this version of the engine"
            )
        j = len(self.joint_names)
        v = len(self.vertices)
        checks = [
            (self.parents.shape == (j,), "parents must have one entry per joint"),
            (self.rest_joint_frames.shape == (j, 4, 4), "rest_joint_frames must be (J, 4, 4)"),
            (self.bone_tails.shape == (j, 3), "bone_tails must be (J, 3)"),
            (self.model_to_world.shape == (3, 3), "model_to_world must be (3, 3)"),
            (self.vertices.ndim == 2 and self.vertices.shape[1] == 3, "vertices must be (V, 3)"),
            (self.faces.ndim == 2 and self.faces.shape[1] == 3, "faces must be (F, 3)"),
            (len(self.faces) == 0 or (self.faces.min() >= 0 and self.faces.max() < v), "face index out of range"),
            (self.weight_vertex.shape == self.weight_joint.shape == self.weight_value.shape,
             "weight_vertex, weight_joint and weight_value must have the same length"),
            (len(self.weight_vertex) == 0 or (self.weight_vertex.min() >= 0 and self.weight_vertex.max() < v),
             "weight_vertex out of range"),
            (len(self.weight_joint) == 0 or (self.weight_joint.min() >= 0 and self.weight_joint.max() < j),
             "weight_joint out of range"),
            (self.shape.shape == self.shape_names.shape, "shape and shape_names must have the same length"),
            (self.region_offsets.shape == (len(self.region_names) + 1,), "region_offsets must be (R + 1,)"),
            (int(self.region_offsets[-1]) == len(self.region_vertex_ids), "region_offsets[-1] must equal the id count"),
            (len(self.region_vertex_ids) == 0 or (self.region_vertex_ids.min() >= 0 and self.region_vertex_ids.max() < v),
             "region vertex id out of range"),
            (self.parents[0] == -1 and all(0 <= p < i for i, p in enumerate(self.parents[1:], start=1)),
             "parents must list the root first and each parent before its children"),
        ]
        for ok, message in checks:
            if not ok:
                raise RigError(f"invalid rig: {message}")


_FIELD_NAMES = tuple(f.name for f in fields(Rig))


def write_rig(path: str | Path, rig: Rig) -> None:
    """Write ``rig`` to ``path`` whole or not at all (engine.files.atomic_file): a cancelled
    or killed run never leaves half a rig where a reader finds it."""
    rig.validate()
    arrays = {name: np.asarray(getattr(rig, name)) for name in _FIELD_NAMES}
    with atomic_file(path) as stream:
        np.savez_compressed(stream, **arrays)


def read_rig(path: str | Path) -> Rig:
    """Read and validate a rig file; RigError names what is wrong."""
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            unknown = sorted(keys - set(_FIELD_NAMES))
            missing = sorted(set(_FIELD_NAMES) - keys)
            if unknown:
                raise RigError(f"rig file {path} has unknown keys {unknown}")
            if missing:
                raise RigError(f"rig file {path} lacks keys {missing}")
            values = {name: data[name] for name in _FIELD_NAMES}
    except RigError:
        raise
    except (OSError, ValueError) as error:
        raise RigError(f"cannot read rig file {path}: {error}") from None
    values["schema_version"] = int(values["schema_version"])
    values["kind"] = str(values["kind"])
    rig = Rig(**values)
    rig.validate()
    return rig


def bone_tails(frames: np.ndarray, parents: tuple[int, ...] | np.ndarray) -> np.ndarray:
    """(J, 4, 4) rest frames -> (J, 3) tails on each frame's Y axis. The length reaches the
    child whose head lies furthest along the Y axis; a joint without one (a leaf, or a root whose
    children share its head) gets half its parent's length (``ROOT_BONE_LENGTH`` for a root)."""
    heads = frames[:, :3, 3]
    y_axes = frames[:, :3, 1]
    count = len(heads)
    lengths = np.zeros(count)
    for joint in range(count):
        children = [c for c in range(count) if parents[c] == joint]
        reach = [float(np.dot(heads[c] - heads[joint], y_axes[joint])) for c in children]
        best = max(reach, default=0.0)
        if best >= MIN_BONE_LENGTH:
            lengths[joint] = best
        elif parents[joint] < 0:
            lengths[joint] = ROOT_BONE_LENGTH
        else:
            lengths[joint] = max(MIN_BONE_LENGTH, 0.5 * lengths[parents[joint]])
    return heads + y_axes * lengths[:, None]


def build_rig(body, shape: torch.Tensor | None = None, regions=None) -> Rig:
    """The rig of ``body`` (an ``engine.body.BodyModel``) for ``shape`` (S,) (default: the
    body's default shape); ``regions``: its ``engine.body.region_map.BodyRegions`` (derived when
    omitted)."""
    from engine.body.region_map import body_regions
    from engine.body.regions import MESH_REGIONS

    if shape is None:
        shape = body.default_shape()
    if regions is None:
        regions = body_regions(body)
    with torch.no_grad():
        batch_shape = shape.reshape(1, -1).to(body.default_shape().dtype)
        frames = body.rest_joint_frames(batch_shape)[0].double().numpy()
        vertices = body.rest_vertices(batch_shape)[0].float().numpy()
    weights = body.skinning_weights()
    weight_vertex, weight_joint = np.nonzero(weights > 0)
    region_sets = [regions.vertex_ids(name) for name in MESH_REGIONS]
    return Rig(
        schema_version=RIG_SCHEMA_VERSION,
        kind=body.kind,
        joint_names=np.array(body.joint_names),
        parents=np.array(body.parents, dtype=np.int32),
        rest_joint_frames=frames,
        bone_tails=bone_tails(frames, body.parents),
        model_to_world=np.asarray(body.model_to_world, dtype=np.float64),
        vertices=vertices,
        faces=np.asarray(body.faces, dtype=np.int32),
        weight_vertex=weight_vertex.astype(np.int32),
        weight_joint=weight_joint.astype(np.int32),
        weight_value=weights[weight_vertex, weight_joint].astype(np.float32),
        shape=shape.detach().float().numpy().reshape(-1),
        shape_names=np.array(body.shape_names),
        region_names=np.array(MESH_REGIONS),
        region_offsets=np.cumsum([0] + [len(s) for s in region_sets]).astype(np.int64),
        region_vertex_ids=np.concatenate(region_sets).astype(np.int32),
    )
