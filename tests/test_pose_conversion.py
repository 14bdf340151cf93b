"""Pose conversion helpers (engine.body.pose_conversion): anny's own pose parameters and world
bone matrices <-> the job's rotations, checked against anny's own forward pass and the engine
body's forward pass (vertices within 1 mm)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.body import load_body
from engine.body.pose_conversion import (
    ANNY_DEFAULT_PARAMETERIZATION,
    anny_pose_parameters_to_job,
    job_rotations,
    job_to_anny_pose_parameters,
    job_to_world_matrices,
    local_to_world_matrices,
    rotations_from_job,
    world_matrices_to_job,
    world_matrices_to_local,
)

MM = 1e-3


@pytest.fixture(scope="module")
def body():
    return load_body("anny")


@pytest.fixture(scope="module")
def anny_model():
    """Anny as a researcher creates it: every default (pose parameterisation included)."""
    import anny

    return anny.Anny(skinning_method="lbs")


def _rotations(generator: torch.Generator, batch: tuple[int, ...], joints: int, scale: float) -> torch.Tensor:
    import roma

    return roma.rotvec_to_rotmat(torch.randn(*batch, joints, 3, generator=generator, dtype=torch.float64) * scale)


def _job_pose(seed: int, body, batch: int = 3):
    generator = torch.Generator().manual_seed(seed)
    rotations = _rotations(generator, (batch,), len(body.joint_names), 0.35)
    translation = torch.randn(batch, 3, generator=generator, dtype=torch.float64) * 0.4
    shape = torch.rand(batch, len(body.shape_names), generator=generator, dtype=torch.float64)
    return rotations, translation, shape


def _engine_vertices(body, rotations, translation, shape) -> torch.Tensor:
    with torch.no_grad():
        out = body.forward(torch.as_tensor(rotations).float(), torch.as_tensor(translation).float(),
                           torch.as_tensor(shape).float())
    return out.vertices.double()


def _anny_vertices(model, parameters, shape) -> torch.Tensor:
    with torch.no_grad():
        return model(pose_parameters=torch.as_tensor(parameters), phenotype_kwargs=torch.as_tensor(shape))["vertices"]


def _vertex_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm(dim=-1).max())


def _angle_error(a, b) -> float:
    import roma

    return float(roma.rotmat_geodesic_distance(torch.as_tensor(a), torch.as_tensor(b)).max())


def test_anny_default_parameterization_is_local_ref(anny_model):
    assert anny_model.pose_parameterization == ANNY_DEFAULT_PARAMETERIZATION == "local-ref"
    assert anny_model.reference_bone_orientations is not None


def test_anny_parameters_to_job_reproduce_anny_vertices(body, anny_model):
    """Random poses in anny's own default parameters, posed by anny's own forward, and by the
    engine body on the converted job pose: the same vertices within 1 mm."""
    generator = torch.Generator().manual_seed(7)
    batch, joints = 3, len(body.joint_names)
    parameters = torch.eye(4, dtype=torch.float64).repeat(batch, joints, 1, 1)
    parameters[..., :3, :3] = _rotations(generator, (batch,), joints, 0.35)
    parameters[:, 0, :3, 3] = torch.randn(batch, 3, generator=generator, dtype=torch.float64) * 0.4
    shape = torch.rand(batch, 6, generator=generator, dtype=torch.float64)

    rotations, translation = anny_pose_parameters_to_job(body, parameters, shape)
    assert rotations.shape == (batch, joints, 3, 3) and translation.shape == (batch, 3)
    error = _vertex_error(_engine_vertices(body, rotations, translation, shape), _anny_vertices(anny_model, parameters, shape))
    assert error <= 1 * MM, f"{error * 1000:.3f} mm"


def test_job_to_anny_parameters_and_back(body, anny_model):
    rotations, translation, shape = _job_pose(11, body)
    expected = _engine_vertices(body, rotations, translation, shape)

    parameters = job_to_anny_pose_parameters(body, rotations, translation, shape)
    assert parameters.shape == (3, len(body.joint_names), 4, 4)
    error = _vertex_error(_anny_vertices(anny_model, parameters, shape), expected)
    assert error <= 1 * MM, f"anny's forward on the converted parameters: {error * 1000:.3f} mm"

    back_rotations, back_translation = anny_pose_parameters_to_job(body, parameters, shape)
    error = _vertex_error(_engine_vertices(body, back_rotations, back_translation, shape), expected)
    assert error <= 1 * MM, f"job -> anny -> job: {error * 1000:.3f} mm"
    assert _angle_error(back_rotations, rotations) < 1e-6
    assert float((back_translation - translation).abs().max()) < 1e-6


def test_anny_parameters_straight_in_are_far_off(body, anny_model):
    """What the helpers are for: anny's deltas are not the job's rotations (world-aligned axes,
    a root pose rather than an offset), so passing them straight in moves vertices by far more
    than 1 mm, while the conversion is within 1 mm."""
    rotations, translation, shape = _job_pose(5, body)
    parameters = job_to_anny_pose_parameters(body, rotations, translation, shape)
    reference = _anny_vertices(anny_model, parameters, shape)
    naive = _engine_vertices(body, parameters[..., :3, :3], parameters[:, 0, :3, 3], shape)
    assert _vertex_error(naive, reference) > 0.1  # measured: about 1 m
    assert _angle_error(parameters[..., 1:, :3, :3], rotations[:, 1:]) > 0.5
    converted = anny_pose_parameters_to_job(body, parameters, shape)
    assert _vertex_error(_engine_vertices(body, *converted, shape), reference) <= 1 * MM


def test_world_matrices_round_trip_anny(body, anny_model):
    rotations, translation, shape = _job_pose(3, body)
    with torch.no_grad():
        posed = body.forward(rotations.float(), translation.float(), shape.float())
    world = job_to_world_matrices(body, rotations, translation, shape)
    # The engine body's own joint frames (Anny's model frame is the world frame) ...
    assert float((world - posed.joint_frames.double()).abs().max()) < 1e-5
    assert float((job_to_world_matrices(body, rotations, translation, shape, frame="world") - world).abs().max()) < 1e-12
    # ... and anny's own posed bone poses ("world" parameterisation).
    parameters = job_to_anny_pose_parameters(body, rotations, translation, shape)
    with torch.no_grad():
        bone_poses = anny_model(pose_parameters=parameters, phenotype_kwargs=shape)["bone_poses"]
    assert float((world - bone_poses).abs().max()) < 1e-5

    back_rotations, back_translation = world_matrices_to_job(body, world, shape)
    assert _angle_error(back_rotations, rotations) < 1e-6
    error = _vertex_error(_engine_vertices(body, back_rotations, back_translation, shape), posed.vertices.double())
    assert error <= 1 * MM, f"job -> world -> job: {error * 1000:.3f} mm"
    from_joint_frames = world_matrices_to_job(body, posed.joint_frames, shape)
    assert _angle_error(from_joint_frames[0], rotations) < 1e-4
    assert float((from_joint_frames[1] - translation.float()).abs().max()) < 1e-5
    from_anny = anny_pose_parameters_to_job(body, bone_poses, shape, parameterization="world")
    assert _angle_error(from_anny[0], rotations) < 1e-6


def test_world_matrices_round_trip_smplx(smplx_model_file):
    body = load_body("smplx", smplx_model_file)
    rotations, translation, shape = _job_pose(4, body, batch=2)
    with torch.no_grad():
        posed = body.forward(rotations.float(), translation.float(), shape.float())
    world = job_to_world_matrices(body, rotations, translation, shape, frame="world")
    assert float((world - posed.joint_frames.double()).abs().max()) < 1e-5
    model_frame = job_to_world_matrices(body, rotations, translation, shape)  # armature space, Y up
    to_world = torch.eye(4, dtype=torch.float64)
    to_world[:3, :3] = torch.as_tensor(body.model_to_world)
    assert float((to_world @ model_frame - world).abs().max()) < 1e-12

    for matrices, frame in ((world, "world"), (model_frame, "model")):
        back_rotations, back_translation = world_matrices_to_job(body, matrices, shape, frame=frame)
        assert _angle_error(back_rotations, rotations) < 1e-6
        assert float((back_translation - translation).abs().max()) < 1e-9
        error = _vertex_error(_engine_vertices(body, back_rotations, back_translation, shape), posed.vertices.double())
        assert error <= 1 * MM, f"{frame}: {error * 1000:.3f} mm"
    with pytest.raises(ValueError, match="only for the anny body"):
        job_to_anny_pose_parameters(body, rotations, translation, shape)


def test_numpy_batches_and_job_dictionaries(body):
    """numpy in -> numpy out, any leading batch dimensions, a shared (S,) shape; the job
    file's quaternion dictionary round trip."""
    generator = torch.Generator().manual_seed(9)
    joints = len(body.joint_names)
    rotations = _rotations(generator, (2, 2), joints, 0.3).numpy()
    translation = np.array([0.1, -0.2, 0.3])  # broadcast over the batch
    shape = np.full(6, 0.4)
    world = job_to_world_matrices(body, rotations, translation, shape)
    assert isinstance(world, np.ndarray) and world.shape == (2, 2, joints, 4, 4)
    back_rotations, back_translation = world_matrices_to_job(body, world, shape)
    assert isinstance(back_rotations, np.ndarray) and back_rotations.shape == (2, 2, joints, 3, 3)
    assert np.abs(back_rotations - rotations).max() < 1e-9 and np.abs(back_translation - translation).max() < 1e-9
    parameters = job_to_anny_pose_parameters(body, rotations, translation, shape)
    assert isinstance(parameters, np.ndarray) and parameters.shape == (2, 2, joints, 4, 4)
    assert np.abs(anny_pose_parameters_to_job(body, parameters, shape)[0] - rotations).max() < 1e-9

    # anny's dictionary form: bone label -> (..., 4, 4), missing bones = identity.
    as_dict = {name: parameters[0, 0, j] for j, name in enumerate(body.joint_names) if j % 2 == 0}
    sparse = parameters[0, 0].copy()
    sparse[1::2] = np.eye(4)
    assert np.abs(anny_pose_parameters_to_job(body, as_dict, shape)[0] - anny_pose_parameters_to_job(body, sparse, shape)[0]).max() < 1e-12

    float32 = anny_pose_parameters_to_job(body, torch.as_tensor(parameters[0, 0]).float(), torch.as_tensor(shape))
    assert float32[0].dtype == torch.float32 and float32[0].shape == (joints, 3, 3)

    entry = job_rotations(body.joint_names, rotations[0, 0])
    assert list(entry) == list(body.joint_names) and all(len(q) == 4 and q[0] >= 0 for q in entry.values())
    assert np.abs(rotations_from_job(body.joint_names, entry) - rotations[0, 0]).max() < 1e-9
    assert np.allclose(rotations_from_job(body.joint_names, {}), np.eye(3))

    # The generic helpers with explicit rest frames and parents.
    rest = body.rest_joint_frames(torch.as_tensor(shape).float()[None])[0].double().numpy()
    frames = local_to_world_matrices(rotations, translation, rest, body.parents)
    local, root = world_matrices_to_local(frames, rest, body.parents)
    assert np.abs(local - rotations).max() < 1e-6 and np.abs(root - translation).max() < 1e-6


def test_clear_errors(body):
    joints = len(body.joint_names)
    identity = np.tile(np.eye(3), (joints, 1, 1))
    with pytest.raises(ValueError, match=rf"local_rotations: expected shape \(\.\.\., {joints}, 3, 3\), got \(3, 3, 3\)"):
        job_to_world_matrices(body, np.tile(np.eye(3), (3, 1, 1)), np.zeros(3))
    with pytest.raises(ValueError, match="root_translation: expected shape"):
        job_to_world_matrices(body, identity, np.zeros(2))
    with pytest.raises(ValueError, match="shape: expected shape"):
        job_to_world_matrices(body, identity, np.zeros(3), np.zeros(10))
    bad = identity.copy()
    bad[5, 0, 0] = np.nan
    with pytest.raises(ValueError, match="local_rotations: 1 non-finite"):
        job_to_anny_pose_parameters(body, bad, np.zeros(3))
    scaled = identity.copy()
    scaled[5] *= 1.5
    with pytest.raises(ValueError, match=r"local_rotations: entry \(5,\) is not a rotation"):
        job_to_world_matrices(body, scaled, np.zeros(3))
    with pytest.raises(ValueError, match="pose_parameters: expected shape"):
        anny_pose_parameters_to_job(body, np.tile(np.eye(4), (joints, 1, 1))[:, :3])
    with pytest.raises(ValueError, match="unknown bone label"):
        anny_pose_parameters_to_job(body, {"tail": np.eye(4)})
    with pytest.raises(ValueError, match="parameterization"):
        anny_pose_parameters_to_job(body, np.tile(np.eye(4), (joints, 1, 1)), parameterization="axis-angle")
    with pytest.raises(ValueError, match="frame"):
        job_to_world_matrices(body, identity, np.zeros(3), frame="blender")
    with pytest.raises(ValueError, match="do not broadcast"):
        job_to_world_matrices(body, np.tile(identity, (2, 1, 1, 1)), np.zeros((3, 3)))
    # Matrices posed with another shape: the joints are not where this shape puts them.
    tall = np.array([0.5, 0.5, 0.5, 0.5, 1.0, 0.5])
    world = job_to_world_matrices(body, identity, np.zeros(3), tall)
    with pytest.raises(ValueError, match=r"joint \d+ \(\S+\) is \d+\.\d cm from where its parent .*\(check `shape` and `frame`\)"):
        world_matrices_to_job(body, world)
    # A bone translated in anny's parameters cannot be a job pose.
    parameters = np.tile(np.eye(4), (joints, 1, 1))
    parameters[10, :3, 3] = [0.0, 0.05, 0.0]
    with pytest.raises(ValueError, match="the job can only move the root"):
        anny_pose_parameters_to_job(body, parameters)
