"""AnnyBody against Anny's own forward pass, and its rest frames (Blender bone convention)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.body import BodyModelError, load_body


@pytest.fixture(scope="module")
def body():
    return load_body("anny")


@pytest.fixture(scope="module")
def anny_reference():
    import anny

    model = anny.Anny(skinning_method="lbs")
    # Reference orientations = rest orientations: Anny's "local-bone" parameterisation then
    # is Blender's (a local rotation is a rotation in the bone's own rest frame).
    model.reference_bone_orientations = None
    return model


def _random_rotations(generator: torch.Generator, batch: int, joints: int, scale: float) -> torch.Tensor:
    import roma

    rotvec = torch.randn(batch, joints, 3, generator=generator, dtype=torch.float64) * scale
    return roma.rotvec_to_rotmat(rotvec)


def test_forward_matches_anny(body, anny_reference):
    generator = torch.Generator().manual_seed(1)
    batch, joints = 2, len(body.joint_names)
    rotations = _random_rotations(generator, batch, joints, 0.4)
    translation = torch.randn(batch, 3, generator=generator, dtype=torch.float64) * 0.3
    shape = torch.rand(batch, 6, generator=generator, dtype=torch.float64)
    ours = body.forward(rotations.float(), translation.float(), shape.float())

    zeros = torch.zeros(1, 0, dtype=torch.float64)
    coefficients = anny_reference._get_phenotype_blendshape_coefficients(shape, zeros, zeros)
    rest = anny_reference.get_rest_model(coefficients)["rest_bone_poses"]
    deltas = torch.eye(4, dtype=torch.float64).repeat(batch, joints, 1, 1)
    deltas[:, :, :3, :3] = rotations
    # Anny's root delta is the root's world pose; ours is a rotation and an offset in its rest frame.
    root_rest = rest[:, 0]
    deltas[:, 0, :3, :3] = root_rest[:, :3, :3] @ rotations[:, 0]
    deltas[:, 0, :3, 3] = root_rest[:, :3, 3] + (root_rest[:, :3, :3] @ translation[:, :, None])[..., 0]
    theirs = anny_reference.forward(
        pose_parameters=deltas, phenotype_kwargs=shape, pose_parameterization="local-bone"
    )
    assert (ours.vertices.double() - theirs["vertices"]).abs().max() < 1e-5
    assert (ours.joints.double() - theirs["bone_poses"][:, :, :3, 3]).abs().max() < 1e-5

    vertex_ids = torch.arange(0, body.num_vertices, 7)
    subset = body.forward(rotations.float(), translation.float(), shape.float(), vertex_ids)
    assert (subset.vertices.double() - theirs["vertices"][:, vertex_ids]).abs().max() < 1e-5


def test_root_translation_moves_everything(body):
    batch, joints = 1, len(body.joint_names)
    rotations = torch.eye(3).repeat(batch, joints, 1, 1)
    shape = body.default_shape().unsqueeze(0)
    offset = torch.tensor([[0.3, -0.2, 1.1]])
    still = body.forward(rotations, torch.zeros(1, 3), shape)
    moved = body.forward(rotations, offset, shape)
    assert torch.allclose(moved.vertices - still.vertices, offset.expand_as(still.vertices), atol=1e-5)
    assert torch.allclose(moved.joints - still.joints, offset.expand_as(still.joints), atol=1e-5)


def test_identity_pose_is_rest_and_gradients_flow(body):
    joints = len(body.joint_names)
    shape = torch.full((1, 6), 0.3, requires_grad=True)
    rotations = torch.eye(3).repeat(1, joints, 1, 1).requires_grad_(True)
    output = body.forward(rotations, torch.zeros(1, 3), shape)
    assert torch.allclose(output.vertices, body.rest_vertices(shape), atol=1e-5)
    output.vertices.sum().backward()
    assert shape.grad is not None and shape.grad.abs().sum() > 0
    assert rotations.grad is not None and rotations.grad.abs().sum() > 0


def test_rest_frames_follow_blender_bone_convention(body):
    frames = body.rest_joint_frames(body.default_shape().unsqueeze(0))[0].double()
    rotations = frames[:, :3, :3]
    identity = torch.eye(3, dtype=torch.float64).expand_as(rotations)
    assert (rotations.transpose(-1, -2) @ rotations - identity).abs().max() < 1e-5
    assert torch.allclose(torch.linalg.det(rotations), torch.ones(len(rotations), dtype=torch.float64), atol=1e-5)
    assert torch.allclose(rotations[0], torch.eye(3, dtype=torch.float64), atol=1e-6)
    # Each bone with a single child at a distance aims its Y axis at that child (within 10 degrees).
    heads = frames[:, :3, 3]
    for joint in range(1, len(body.parents)):
        children = [c for c, p in enumerate(body.parents) if p == joint]
        if len(children) != 1:
            continue
        direction = heads[children[0]] - heads[joint]
        if direction.norm() < 0.005:
            continue
        cosine = torch.dot(direction / direction.norm(), rotations[joint][:, 1])
        assert cosine > np.cos(np.radians(10)), body.joint_names[joint]


def test_unknown_kind_and_model_file_for_anny_are_clear_errors():
    with pytest.raises(BodyModelError, match="unknown body model 'smpl'"):
        load_body("smpl")
    with pytest.raises(BodyModelError, match="built in"):
        load_body("anny", model_path="x.npz")


def test_phenotype_coefficients_and_gradients_match_anny(body):
    generator = torch.Generator().manual_seed(5)
    # Random shapes, the default, the ends and values outside [0, 1] (clamped like Anny).
    shapes = torch.cat([
        torch.rand(16, 6, generator=generator, dtype=torch.float64),
        torch.tensor([[0.5] * 6, [0.0] * 6, [1.0] * 6, [1 / 3, 2 / 3, 0.25, 0.75, -0.2, 1.3]], dtype=torch.float64),
    ])
    reference = body.reference_blendshape_coefficients(shapes).double()
    ours = body.blendshape_coefficients(shapes.float()).double()
    assert (reference - ours).abs().max() < 1e-5
    # On the anchors (0.5 is one) both take the same one-sided gradient, never zero.
    projection = torch.randn(reference.shape[1], dtype=torch.float64, generator=generator)
    for value in (0.5, 0.25, 1 / 3):
        a = torch.full((1, 6), value, dtype=torch.float64, requires_grad=True)
        b = torch.full((1, 6), value, dtype=torch.float32, requires_grad=True)
        (body.reference_blendshape_coefficients(a).double() @ projection).backward()
        (body.blendshape_coefficients(b).double() @ projection).backward()
        assert torch.allclose(a.grad, b.grad.double(), atol=1e-4)
        assert (b.grad.abs() > 0).all()


def test_one_shape_broadcasts_over_a_batch_of_poses(body):
    joints = len(body.joint_names)
    generator = torch.Generator().manual_seed(2)
    import roma

    rotations = roma.rotvec_to_rotmat(torch.randn(3, joints, 3, generator=generator) * 0.2)
    shape = torch.full((1, 6), 0.4)
    vertex_ids = torch.arange(0, body.num_vertices, 11)
    together = body.forward(rotations, torch.zeros(1, 3), shape, vertex_ids)
    assert together.vertices.shape == (3, len(vertex_ids), 3)
    for i in range(3):
        alone = body.forward(rotations[i:i + 1], torch.zeros(1, 3), shape, vertex_ids)
        assert torch.allclose(together.vertices[i], alone.vertices[0], atol=1e-6)


def test_rest_orientations_held_at_another_shape(body):
    """The optimizer's shape stage holds the bones' rest orientations at the stage's starting
    shape: positions and vertices still follow the shape (with gradient), and for a change of
    the size one refinement makes the posed vertices move by well under a millimetre."""
    generator = torch.Generator().manual_seed(5)
    joints = len(body.joint_names)
    rotations = _random_rotations(generator, 1, joints, 0.3)
    start = torch.full((1, 6), 0.5)
    ids = torch.arange(0, body.num_vertices, 7)
    # Held at its own shape: exactly the plain pass.
    own = start.clone().requires_grad_(True)
    held = body.forward(rotations, torch.zeros(1, 3), own, ids, rest_orientation_shape=start)
    plain = body.forward(rotations, torch.zeros(1, 3), start, ids)
    assert torch.allclose(held.vertices, plain.vertices, atol=1e-6)
    # A shape 0.005 away in each feature (twice the most a benchmark refinement moves it).
    moved = (start + torch.tensor([[0.005, -0.005, 0.005, 0.0, 0.005, -0.005]])).requires_grad_(True)
    held = body.forward(rotations, torch.zeros(1, 3), moved, ids, rest_orientation_shape=start)
    exact = body.forward(rotations, torch.zeros(1, 3), moved.detach(), ids)
    change = (exact.vertices - plain.vertices).norm(dim=-1).max()
    error = (held.vertices - exact.vertices).norm(dim=-1).max()
    assert change > 2e-3  # the shape change itself is visible ...
    assert error < 1e-3  # ... holding the orientations is not
    held.vertices.sum().backward()
    assert moved.grad is not None and moved.grad.abs().sum() > 0


def test_held_orientation_pass_equals_the_general_pass_in_value_and_gradient():
    """With the orientations held, forward() maps the coefficients linearly to the rest
    skeleton posing reads (AnnyBody._held_skeleton_map); in float64 its vertices, frames and
    the gradients of the shape, the rotations and the root translation are those of the
    general pass (joint heads, RestTransforms.from_rest) with the same held orientations."""
    from engine.body.anny_body import AnnyBody
    from engine.body.kinematics import RestTransforms, pose_and_skin

    body = AnnyBody(dtype=torch.float64)
    generator = torch.Generator().manual_seed(3)
    joints = len(body.joint_names)
    ids = torch.arange(0, body.num_vertices, 9)
    held = (0.45 + 0.1 * torch.rand(2, 6, generator=generator)).double()
    start = held + 0.01 * torch.rand(2, 6, generator=generator).double()
    rotations = _random_rotations(generator, 2, joints, 0.4).double()
    translation = torch.randn(2, 3, generator=generator).double()
    vertex_weights = torch.randn(2, len(ids), 3, generator=generator).double()
    frame_weights = torch.randn(2, joints, 4, 4, generator=generator).double()

    def gradients(fast: bool):
        shape, turns, shift = (t.clone().requires_grad_(True) for t in (start, rotations, translation))
        if fast:
            out = body.forward(turns, shift, shape, ids, rest_orientation_shape=held)
            vertices, frames = out.vertices, out.joint_frames
        else:
            coefficients = body.blendshape_coefficients(shape)
            rest = RestTransforms.from_rest(body._tree, body._rest_state(held)[1], body._rest_heads(coefficients))
            subset = body._subsets.get(ids)
            frames, vertices = pose_and_skin(
                body._tree, rest, turns, shift, body._rest_vertices(coefficients, subset), subset.sparse_weights
            )
        ((vertices * vertex_weights).sum() + (frames * frame_weights).sum()).backward()
        return vertices.detach(), frames.detach(), shape.grad, turns.grad, shift.grad

    for fast, general in zip(gradients(True), gradients(False)):
        torch.testing.assert_close(fast, general, rtol=1e-10, atol=1e-10)
