"""Distance of each contact of the list on the posed meshes (what the Refine panel reports):
the smallest distance between the regions its two parts stand for, or from a region to the
floor for a ground contact."""

from __future__ import annotations

import bpy
import numpy as np

from .bodies import mesh_regions
from .contacts import contact_label
from .vocabulary import GROUND, regions_for_part


def _posed_vertices(mesh_object) -> np.ndarray:
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


def _points(part: str, regions: dict, vertices: np.ndarray) -> np.ndarray:
    names = regions_for_part(part, regions)
    if not names:
        return np.zeros((0, 3))
    return vertices[np.concatenate([regions[n] for n in names])]


def _min_distance(a: np.ndarray, b: np.ndarray) -> float:
    best = np.inf
    for start in range(0, len(a), 256):
        chunk = a[start:start + 256]
        best = min(best, float(((chunk[:, None, :] - b[None, :, :]) ** 2).sum(-1).min()))
    return float(np.sqrt(best))


def list_contacts(scene) -> list:
    return [c for c in scene.prose.contacts if c.enabled]


def contact_distances(scene, subjects, floor_z: float | None) -> list[float | None]:
    """Distance (m) of each enabled contact of the list at the scene's current frame (None
    when a part names no region of its body, or a ground contact has no floor height)."""
    posed = {}
    for subject in subjects:
        mesh = subject.mesh
        if mesh is not None:
            posed[subject.index + 1] = (mesh_regions(mesh.data), _posed_vertices(mesh))
    out: list[float | None] = []
    for contact in list_contacts(scene):
        first = posed.get(contact.person_a)
        if first is None:
            out.append(None)
            continue
        a = _points(contact.part_a, *first)
        if contact.part_b == GROUND:
            out.append(float(a[:, 2].min() - floor_z) if len(a) and floor_z is not None else None)
            continue
        second = posed.get(contact.person_b)
        b = _points(contact.part_b, *second) if second is not None else np.zeros((0, 3))
        out.append(_min_distance(a, b) if len(a) and len(b) else None)
    return out


def contact_labels(scene) -> list[tuple[str, str]]:
    return [(contact_label(c.part_a, c.person_a, c.part_b, c.person_b), c.source) for c in list_contacts(scene)]
