"""The fused forward kinematics and skinning (engine.body.kinematics.pose_and_skin) against the
plain autograd composition of forward_kinematics and skin_vertices: same values, same gradients
for every input, on a small random tree in float64 (no body model needed)."""

from __future__ import annotations

import pytest
import torch

from engine.body.kinematics import (
    KinematicTree,
    RestTransforms,
    SparseWeights,
    forward_kinematics,
    homogeneous,
    pose_and_skin,
    skin_vertices,
    skinning_matrix,
)
from engine.refine.losses.geometry import axis_angle_to_matrix

PARENTS = (-1, 0, 1, 2, 1, 4, 5, 0, 7, 8, 9, 2)
VERTICES = 40
BATCH = 2


def _inputs(rest_batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    joints = len(PARENTS)

    def normal(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    weights = torch.rand(VERTICES, joints, generator=generator, dtype=torch.float64)
    weights = weights * (torch.rand(VERTICES, joints, generator=generator) < 0.3)  # sparse, like a real rig
    weights[:, 0] += 0.05
    return {
        "rest_rotations": axis_angle_to_matrix(normal(rest_batch, joints, 3)).requires_grad_(True),
        "rest_positions": normal(rest_batch, joints, 3).requires_grad_(True),
        "pose": (0.7 * normal(BATCH, joints, 3)).requires_grad_(True),
        "root_translation": normal(BATCH, 3).requires_grad_(True),
        "rest_vertices": normal(rest_batch, VERTICES, 3).requires_grad_(True),
        "weights": weights / weights.sum(1, keepdim=True),
        "grad_frames": normal(BATCH, joints, 4, 4) * torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=torch.float64)[:, None],
        "grad_vertices": normal(BATCH, VERTICES, 3),
    }


def _reference(tree, x):
    skeleton = forward_kinematics(
        tree, x["rest_rotations"], x["rest_positions"], axis_angle_to_matrix(x["pose"]), x["root_translation"]
    )
    frames = homogeneous(skeleton.world_rotations, skeleton.world_positions)
    return frames, skin_vertices(x["rest_vertices"], x["weights"], skeleton)


def _fused(tree, x, by_matrix: bool):
    rest = RestTransforms.from_rest(tree, x["rest_rotations"], x["rest_positions"])
    rotations = axis_angle_to_matrix(x["pose"])
    if by_matrix:
        return pose_and_skin(tree, rest, rotations, x["root_translation"], matrix=skinning_matrix(x["rest_vertices"], x["weights"]))
    return pose_and_skin(
        tree, rest, rotations, x["root_translation"], x["rest_vertices"], SparseWeights.from_dense(x["weights"])
    )


def _values_and_gradients(function, x):
    differentiable = ("rest_rotations", "rest_positions", "pose", "root_translation", "rest_vertices")
    for name in differentiable:
        x[name].grad = None
    frames, vertices = function()
    ((frames * x["grad_frames"]).sum() + (vertices * x["grad_vertices"]).sum()).backward()
    gradients = {name: x[name].grad.clone() if x[name].grad is not None else None for name in differentiable}
    return frames.detach(), vertices.detach(), gradients


@pytest.mark.parametrize("rest_batch", [1, BATCH])
@pytest.mark.parametrize("by_matrix", [False, True])
def test_fused_pose_and_skin_matches_autograd(rest_batch, by_matrix):
    tree = KinematicTree.from_parents(PARENTS)
    x = _inputs(rest_batch)
    frames_ref, vertices_ref, grads_ref = _values_and_gradients(lambda: _reference(tree, x), x)
    frames, vertices, grads = _values_and_gradients(lambda: _fused(tree, x, by_matrix), x)
    torch.testing.assert_close(frames, frames_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(vertices, vertices_ref, rtol=0, atol=1e-12)
    for name, expected in grads_ref.items():
        if by_matrix and name == "rest_vertices":
            # A skinning matrix is a constant shape's: its rest vertices get no gradient.
            assert grads[name] is None
            continue
        assert expected.abs().max() > 0.1, name  # the test would see a missing gradient
        torch.testing.assert_close(grads[name], expected, rtol=1e-9, atol=1e-9, msg=name)


def test_subtree_matrix_lists_each_joint_and_its_descendants():
    tree = KinematicTree.from_parents(PARENTS)
    subtree = tree.subtree
    for joint in range(len(PARENTS)):
        descendants = {joint}
        for child, parent in enumerate(PARENTS):
            if child > 0 and parent in descendants:
                descendants.add(child)
        assert set(torch.nonzero(subtree[joint])[:, 0].tolist()) == descendants
    assert tree.parent_slot[0] == len(PARENTS)


def test_pose_and_skin_needs_a_way_to_skin():
    tree = KinematicTree.from_parents(PARENTS)
    x = _inputs(1)
    rest = RestTransforms.from_rest(tree, x["rest_rotations"], x["rest_positions"])
    with pytest.raises(ValueError, match="skinning matrix or rest vertices"):
        pose_and_skin(tree, rest, axis_angle_to_matrix(x["pose"]), x["root_translation"])


@pytest.mark.parametrize("scale", [1.0, 0.05, 1e-4, 0.0])
def test_rotate_by_axis_angle_matches_rodrigues_in_value_and_gradient(scale):
    """The optimizer's rotation offsets go through one autograd node with the SO(3) right
    Jacobian; small angles (the common case) use its series, large ones the closed form."""
    from engine.refine.losses.geometry import rotate_by_axis_angle

    generator = torch.Generator().manual_seed(1)
    offsets = (scale * torch.randn(64, 3, generator=generator, dtype=torch.float64)).requires_grad_(True)
    base = axis_angle_to_matrix(torch.randn(64, 3, generator=generator, dtype=torch.float64)).requires_grad_(True)
    weights = torch.randn(64, 3, 3, generator=generator, dtype=torch.float64)

    def gradients(function):
        offsets.grad = base.grad = None
        value = function()
        (value * weights).sum().backward()
        return value.detach(), offsets.grad.clone(), base.grad.clone()

    fast = gradients(lambda: rotate_by_axis_angle(base, offsets))
    slow = gradients(lambda: base @ axis_angle_to_matrix(offsets))
    assert slow[1].abs().max() > 0.1
    for got, expected in zip(fast, slow):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-10)
