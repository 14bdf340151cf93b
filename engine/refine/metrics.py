"""Evaluation metrics (DESIGN.md section 4, "Metrics"). Pure functions on arrays or tensors;
lengths in metres (multiply by 1000 for the millimetres the paper reports).

* :func:`mpjpe`: mean per-joint position error.
* :func:`pa_mpjpe`: the same after the best similarity transform (Procrustes) of the
  prediction onto the ground truth; :func:`joint_pa_mpjpe` aligns two people's skeletons
  with one transform (their relative placement counts).
* :func:`per_person_pa_mpjpe`: PA-MPJPE of each person aligned on their own, averaged.
* :func:`pcc`: percentage of correct contact, averaged over radii 0, 0.05, ..., 0.95 m.
* :func:`min_point_distance` and :func:`ground_gap`: a ground-truth contact pair's predicted
  distance (two regions' vertices, or a region and the floor), what PCC is computed from.
* :func:`constraint_distances`: each contact term's unweighted value.
* :func:`max_penetration_depth`: how deep the vertices of one surface sink into another.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from engine.refine.losses.contact import ContactIndex, pair_distances, term_values

PCC_RADII_M: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(20))


def mpjpe(predicted: np.ndarray, target: np.ndarray) -> float:
    """(..., J, 3) each -> mean Euclidean joint error."""
    return float(np.linalg.norm(np.asarray(predicted) - np.asarray(target), axis=-1).mean())


def procrustes_align(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(K, 3) predicted points -> the same after the similarity transform (rotation, uniform
    scale, translation) that best fits them to target (K, 3), in the least-squares sense."""
    predicted = np.asarray(predicted, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    mu_p, mu_t = predicted.mean(0), target.mean(0)
    p, t = predicted - mu_p, target - mu_t
    u, s, vt = np.linalg.svd(p.T @ t)
    d = np.sign(np.linalg.det(u @ vt))
    correction = np.diag([1.0, 1.0, d])
    rotation = u @ correction @ vt  # applied as p @ rotation
    scale = (s * np.diag(correction)).sum() / (p * p).sum()
    return scale * p @ rotation + mu_t


def pa_mpjpe(predicted: np.ndarray, target: np.ndarray) -> float:
    """(J, 3) each -> MPJPE after Procrustes alignment."""
    return mpjpe(procrustes_align(predicted, target), target)


def joint_pa_mpjpe(predicted: Sequence[np.ndarray], target: Sequence[np.ndarray]) -> float:
    """Two (or more) people's (J, 3) skeletons aligned with one transform, then MPJPE."""
    p = np.concatenate([np.asarray(x) for x in predicted], 0)
    t = np.concatenate([np.asarray(x) for x in target], 0)
    return pa_mpjpe(p, t)


def per_person_pa_mpjpe(predicted: np.ndarray, target: np.ndarray) -> float:
    """(P, J, 3) each -> the mean over people of each person's own PA-MPJPE (the paper's
    PA-MPJPE for two people; :func:`joint_pa_mpjpe` is the one-alignment variant)."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    if predicted.shape != target.shape or predicted.ndim != 3:
        raise ValueError(f"expected two (P, J, 3) arrays of one shape, got {predicted.shape} and {target.shape}")
    return float(np.mean([pa_mpjpe(p, t) for p, t in zip(predicted, target)]))


def min_point_distance(points_a: np.ndarray, points_b: np.ndarray, chunk: int = 2048) -> float:
    """(A, 3), (B, 3) -> the smallest Euclidean distance between a point of each set (computed
    in chunks of ``chunk`` rows, so two full regions never make one huge matrix)."""
    a = np.asarray(points_a, dtype=np.float64)
    b = np.asarray(points_b, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("min_point_distance needs at least one point in each set")
    best = np.inf
    b_squared = (b * b).sum(1)
    for start in range(0, len(a), chunk):
        part = a[start : start + chunk]
        squared = (part * part).sum(1)[:, None] + b_squared[None] - 2.0 * part @ b.T
        best = min(best, float(squared.min()))
    return float(np.sqrt(max(best, 0.0)))


def ground_gap(points: np.ndarray, floor_height: float) -> float:
    """(K, 3) points of a region -> |lowest z - floor|: a ground contact's distance (Z up)."""
    points = np.asarray(points, dtype=np.float64)
    if points.size == 0:
        raise ValueError("ground_gap needs at least one point")
    return float(abs(points[:, 2].min() - floor_height))


def pcc(predicted_distances: Sequence[float], radii: Sequence[float] = PCC_RADII_M) -> float:
    """Percentage of correct contact: for each ground-truth touching pair, its predicted
    minimum distance; a pair is correct at radius r when the distance is below r (a
    distance of exactly 0 counts at r = 0). Mean over radii of the correct fraction, in %."""
    d = np.asarray(predicted_distances, dtype=np.float64)
    if d.size == 0:
        raise ValueError("PCC needs at least one ground-truth contact pair")
    correct = [(d <= r).mean() if r == 0 else (d < r).mean() for r in radii]
    return float(100.0 * np.mean(correct))


def constraint_distances(index: ContactIndex, vertices: torch.Tensor, floor_height: float) -> list[float]:
    """Each contact term's unweighted value in metres (see ContactIndex). vertices: (N, V', 3)."""
    with torch.no_grad():
        if index.num_terms == 0:
            return []
        return [float(v) for v in term_values(index, pair_distances(index, vertices, floor_height))]


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3), (F, 3) -> (V, 3) unit area-weighted vertex normals (outward for a mesh with
    counter-clockwise faces)."""
    v = np.asarray(vertices, dtype=np.float64)
    tri = v[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(v)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(norm, 1e-12)


def max_penetration_depth(
    points: np.ndarray,
    surface_vertices: np.ndarray,
    surface_normals: np.ndarray,
    max_depth_m: float = 0.1,
) -> float:
    """How deep ``points`` (P, 3) sink below a surface given by its vertices (S, 3) and outward
    vertex normals (S, 3): for each point, the nearest surface vertex p with normal n gives
    depth ``-(point - p) . n`` when that is positive (and the point is within ``max_depth_m``,
    beyond which the nearest vertex no longer tells inside from outside). Returns the maximum,
    0 when nothing penetrates. A mesh-based measure, independent of the capsule proxies the
    interpenetration loss uses."""
    pts = torch.as_tensor(np.asarray(points), dtype=torch.float64)
    surf = torch.as_tensor(np.asarray(surface_vertices), dtype=torch.float64)
    normals = torch.as_tensor(np.asarray(surface_normals), dtype=torch.float64)
    deepest = 0.0
    for chunk in torch.split(pts, 2048):
        distance, nearest = torch.cdist(chunk, surf).min(dim=1)
        depth = -((chunk - surf[nearest]) * normals[nearest]).sum(-1)
        valid = (depth > 0) & (distance < max_depth_m)
        if bool(valid.any()):
            deepest = max(deepest, float(depth[valid].max()))
    return deepest
