"""Measures the demo reports, taken on Blender's own evaluated meshes (what the user sees, not
the engine's numbers): each ground-truth contact's distance on the full region vertex sets,
the deepest penetration (``engine.synth.poses.penetration_depth``, the benchmarks' measure) and
each body's lowest point (how it stands on the floor). The test re-measures a saved .blend with
the same functions."""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from engine.body.regions import GROUND

Contact = tuple[int, str, int, str]


@dataclass(frozen=True)
class Measures:
    distances_m: tuple[float, ...]  # per ground-truth contact
    penetration_m: float
    lowest_m: tuple[float, ...]  # per person, world z of the lowest vertex


def evaluated_vertices(mesh_object: bpy.types.Object) -> np.ndarray:
    """(V, 3) armature-deformed vertices in world space at the current frame."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = mesh_object.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        co = np.zeros(len(mesh.vertices) * 3)
        mesh.vertices.foreach_get("co", co)
    finally:
        evaluated.to_mesh_clear()
    matrix = np.asarray(evaluated.matrix_world)
    return co.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def triangles(mesh: bpy.types.Mesh) -> np.ndarray:
    """(F, 3) vertex ids of a triangle mesh (the bodies Add body builds)."""
    loops = np.zeros(len(mesh.loops), dtype=np.int64)
    mesh.loops.foreach_get("vertex_index", loops)
    if len(mesh.loops) != 3 * len(mesh.polygons):
        raise ValueError(f"{mesh.name} is not a triangle mesh")
    return loops.reshape(-1, 3)


class _Regions:
    """The mesh's region vertex ids in the shape engine.synth.poses expects."""

    def __init__(self, regions: dict[str, np.ndarray]):
        self._regions = regions

    def vertex_ids(self, name: str) -> np.ndarray:
        return self._regions[name]


class _Faces:
    def __init__(self, faces: np.ndarray):
        self.faces = faces


def contact_distance(vertices: list[np.ndarray], regions: list[dict[str, np.ndarray]], contact: Contact, floor: float = 0.0) -> float:
    a, ra, b, rb = contact
    va = vertices[a][regions[a][ra]]
    if rb == GROUND:
        return abs(float(va[:, 2].min()) - floor)
    vb = vertices[b][regions[b][rb]]
    # Blockwise: region sets are a few thousand vertices; the full matrix would be large.
    best = np.inf
    for start in range(0, len(va), 512):
        block = va[start:start + 512]
        best = min(best, float(np.sqrt(((block[:, None, :] - vb[None, :, :]) ** 2).sum(-1)).min()))
    return best


def measure(meshes: list[bpy.types.Object], contacts: tuple[Contact, ...]) -> Measures:
    """The measures of the bodies ``meshes`` (Person 1 first) as they stand at the current frame."""
    import torch

    from engine.synth.poses import penetration_depth
    from prosepose.prose_blender.bodies import mesh_regions

    vertices = [evaluated_vertices(m) for m in meshes]
    regions = [mesh_regions(m.data) for m in meshes]
    distances = tuple(contact_distance(vertices, regions, c) for c in contacts)
    stacked = torch.as_tensor(np.stack(vertices), dtype=torch.float32)
    penetration = penetration_depth(_Faces(triangles(meshes[0].data)), _Regions(regions[0]), contacts, stacked)
    return Measures(distances, float(penetration), tuple(float(v[:, 2].min()) for v in vertices))
