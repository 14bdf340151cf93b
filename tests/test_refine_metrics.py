"""Metrics against small hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.refine.losses.contact import build_contact_index
from engine.refine.metrics import (
    PCC_RADII_M,
    constraint_distances,
    joint_pa_mpjpe,
    max_penetration_depth,
    mpjpe,
    pa_mpjpe,
    pcc,
    vertex_normals,
)
from engine.contacts.objective import ContactObjective, ContactTerm, RegionPair


def test_mpjpe_is_the_mean_joint_distance():
    target = np.zeros((3, 3))
    predicted = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    assert mpjpe(predicted, target) == pytest.approx((5.0 + 1.0 + 0.0) / 3)


def test_pa_mpjpe_removes_rotation_scale_and_translation():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(10, 3))
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    predicted = 2.5 * target @ rotation.T + np.array([1.0, -2.0, 3.0])
    assert mpjpe(predicted, target) > 1.0
    assert pa_mpjpe(predicted, target) == pytest.approx(0.0, abs=1e-9)
    # A non-rigid change survives the alignment.
    bent = predicted.copy()
    bent[0] += 1.0
    assert pa_mpjpe(bent, target) > 0.01


def test_joint_pa_mpjpe_keeps_the_relative_placement_of_two_people():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) + 3.0
    # Each person alone is perfect after its own alignment, but person 2 is moved by 1 m.
    moved_b = b + np.array([1.0, 0.0, 0.0])
    assert pa_mpjpe(moved_b, b) == pytest.approx(0.0, abs=1e-9)
    assert joint_pa_mpjpe([a, b], [a, b]) == pytest.approx(0.0, abs=1e-9)
    assert joint_pa_mpjpe([a, moved_b], [a, b]) > 0.1


def test_pcc_averages_over_twenty_radii():
    assert PCC_RADII_M[0] == 0.0 and PCC_RADII_M[-1] == pytest.approx(0.95) and len(PCC_RADII_M) == 20
    assert pcc([0.0]) == pytest.approx(100.0)
    # 0.12 m is correct at r = 0.15 ... 0.95: 17 of 20 radii.
    assert pcc([0.12]) == pytest.approx(100.0 * 17 / 20)
    assert pcc([0.12, 2.0]) == pytest.approx(100.0 * 17 / 40)
    with pytest.raises(ValueError):
        pcc([])


class Regions:
    def subsample(self, region):
        return {"left_hand": np.array([0, 1]), "head": np.array([2])}[region]


def test_constraint_distances_report_each_term_unweighted():
    vertices = torch.tensor([[[0.0, 0, 0], [0, 0, 1], [0, 0, 0.4]], [[5.0, 0, 0], [5, 0, 1], [0, 0.25, 0.0]]])
    pair = RegionPair(0, "left_hand", 1, "head")
    ground = RegionPair(0, "left_hand", 0, "ground")
    objective = ContactObjective(
        (ContactTerm((((pair,),),), 7.0, "artist", "a"), ContactTerm((((ground,),),), 3.0, "artist", "b"))
    )
    index = build_contact_index(objective, Regions(), [np.arange(3)] * 2)
    assert constraint_distances(index, vertices, floor_height=-0.1) == pytest.approx([0.25, 0.1])


def test_max_penetration_depth_on_a_flat_patch():
    # A 5x5 patch in z = 0 with normals +z; one point 3 cm below it, one 2 cm above.
    xs, ys = np.meshgrid(np.linspace(-0.1, 0.1, 5), np.linspace(-0.1, 0.1, 5))
    surface = np.stack([xs.ravel(), ys.ravel(), np.zeros(25)], 1)
    normals = np.tile([0.0, 0.0, 1.0], (25, 1))
    assert max_penetration_depth(np.array([[0.0, 0.0, -0.03], [0.05, 0, 0.02]]), surface, normals) == pytest.approx(0.03)
    assert max_penetration_depth(np.array([[0.0, 0.0, 0.02]]), surface, normals) == 0.0
    # Far below the surface (beyond max_depth_m) the nearest vertex no longer decides.
    assert max_penetration_depth(np.array([[0.0, 0.0, -0.5]]), surface, normals) == 0.0


def test_vertex_normals_point_out_of_a_tetrahedron():
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    normals = vertex_normals(vertices, faces)
    centre = vertices.mean(0)
    assert all(np.dot(n, v - centre) > 0 for n, v in zip(normals, vertices))
