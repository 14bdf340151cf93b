"""Distance of each contact of the list on the posed meshes (what the Refine panel reports):
the smallest distance between the regions its two parts stand for, or from a region to the
floor for a ground contact."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class ContactMeasure:
    """A contact's distance (m) and which of the regions its parts stand for are the nearest:
    ``nearest`` is "left hand - right shoulder front" (Person 1's part first as in the list;
    "left hand - ground"), or "" when each part stands for one region only. Why: an unsided
    part ("hand") is met by whichever side the refinement reached, and the artist must be
    able to see which one it was."""

    distance: float
    nearest: str


def _region_points(part: str, regions: dict, vertices: np.ndarray) -> dict[str, np.ndarray]:
    return {name: vertices[regions[name]] for name in regions_for_part(part, regions) if len(regions[name])}


def _words(region: str) -> str:
    return region.replace("_", " ")


def _min_distance(a: np.ndarray, b: np.ndarray) -> float:
    best = np.inf
    for start in range(0, len(a), 256):
        chunk = a[start:start + 256]
        best = min(best, float(((chunk[:, None, :] - b[None, :, :]) ** 2).sum(-1).min()))
    return float(np.sqrt(best))


def list_contacts(scene) -> list:
    return [c for c in scene.prose.contacts if c.enabled]


def contact_measures(scene, subjects, floor_z: float | None) -> list[ContactMeasure | None]:
    """Distance and nearest regions of each enabled contact of the list at the scene's current
    frame (None when a part names no region of its body, or a ground contact has no floor
    height)."""
    posed = {}
    for subject in subjects:
        mesh = subject.mesh
        if mesh is not None:
            posed[subject.index + 1] = (mesh_regions(mesh.data), _posed_vertices(mesh))
    out: list[ContactMeasure | None] = []
    for contact in list_contacts(scene):
        first = posed.get(contact.person_a)
        a = _region_points(contact.part_a, *first) if first is not None else {}
        if contact.part_b == GROUND:
            if not a or floor_z is None:
                out.append(None)
                continue
            lowest = {name: float(points[:, 2].min()) for name, points in a.items()}
            name = min(lowest, key=lowest.__getitem__)
            nearest = f"{_words(name)} - {GROUND}" if len(a) > 1 else ""
            out.append(ContactMeasure(lowest[name] - floor_z, nearest))
            continue
        second = posed.get(contact.person_b)
        b = _region_points(contact.part_b, *second) if second is not None else {}
        if not a or not b:
            out.append(None)
            continue
        distance, name_a, name_b = min((_min_distance(pa, pb), na, nb) for na, pa in a.items() for nb, pb in b.items())
        nearest = f"{_words(name_a)} - {_words(name_b)}" if len(a) > 1 or len(b) > 1 else ""
        out.append(ContactMeasure(distance, nearest))
    return out


def contact_distances(scene, subjects, floor_z: float | None) -> list[float | None]:
    """Distance (m) of each enabled contact of the list at the scene's current frame (see
    contact_measures)."""
    return [None if m is None else m.distance for m in contact_measures(scene, subjects, floor_z)]


def contact_labels(scene) -> list[tuple[str, str]]:
    return [(contact_label(c.part_a, c.person_a, c.part_b, c.person_b), c.source) for c in list_contacts(scene)]
