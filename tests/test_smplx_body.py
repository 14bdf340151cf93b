"""SmplxBody on a generated SMPL-X-layout file, through the real smplx loading code: it poses
the mesh as the smplx package does, and bad model files give one clear error line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.body import BodyModelError, load_body
from engine.body.smplx_data import SMPLX_JOINT_NAMES, SMPLX_NUM_VERTICES

REPO_ROOT = Path(__file__).resolve().parent.parent


def _random_pose(seed: int, batch: int = 2):
    import roma

    generator = torch.Generator().manual_seed(seed)
    rotvec = torch.randn(batch, len(SMPLX_JOINT_NAMES), 3, generator=generator, dtype=torch.float64) * 0.35
    translation = torch.randn(batch, 3, generator=generator, dtype=torch.float64) * 0.3
    betas = torch.randn(batch, 10, generator=generator, dtype=torch.float64)
    return rotvec, roma.rotvec_to_rotmat(rotvec), translation, betas


@pytest.mark.parametrize("pose_correctives", [False, True])
def test_forward_matches_the_smplx_package(smplx_model_file, pose_correctives):
    import smplx

    body = load_body("smplx", smplx_model_file, pose_correctives=pose_correctives)
    rotvec, rotations, translation, betas = _random_pose(seed=3)
    to_world = torch.tensor(body.model_to_world)
    if pose_correctives:
        # The plain SMPLX module, axis-angle input, as a user of the package would call it.
        reference = smplx.create(str(smplx_model_file), model_type="smplx", use_pca=False,
                                 flat_hand_mean=True, num_betas=10, batch_size=2, dtype=torch.float64)
        full = rotvec.reshape(2, -1)
        output = reference(global_orient=full[:, :3], body_pose=full[:, 3:66], jaw_pose=full[:, 66:69],
                           leye_pose=full[:, 69:72], reye_pose=full[:, 72:75], left_hand_pose=full[:, 75:120],
                           right_hand_pose=full[:, 120:165], betas=betas, transl=translation,
                           expression=torch.zeros(2, 10, dtype=torch.float64))
    else:
        reference = smplx.SMPLXLayer(model_path=str(smplx_model_file), num_betas=10, dtype=torch.float64)
        # Pure LBS: the package has no switch for it, so its pose correctives are zeroed.
        reference.posedirs.zero_()
        output = reference(global_orient=rotations[:, :1], body_pose=rotations[:, 1:22], jaw_pose=rotations[:, 22:23],
                           leye_pose=rotations[:, 23:24], reye_pose=rotations[:, 24:25],
                           left_hand_pose=rotations[:, 25:40], right_hand_pose=rotations[:, 40:55],
                           betas=betas, transl=translation)
    expected_vertices = output.vertices @ to_world.T
    expected_joints = output.joints[:, : len(SMPLX_JOINT_NAMES)] @ to_world.T
    ours = body.forward(rotations.float(), translation.float(), betas.float())
    assert ours.vertices.shape == (2, SMPLX_NUM_VERTICES, 3)
    assert (ours.vertices.double() - expected_vertices).abs().max() < 1e-5
    assert (ours.joints.double() - expected_joints).abs().max() < 1e-5
    vertex_ids = torch.arange(5, SMPLX_NUM_VERTICES, 3)
    subset = body.forward(rotations.float(), translation.float(), betas.float(), vertex_ids)
    assert (subset.vertices.double() - expected_vertices[:, vertex_ids]).abs().max() < 1e-5
    # The pose moves the mesh (the comparison is not between two rest poses).
    rest = body.rest_vertices(betas.float()) @ to_world.float().T
    assert (ours.vertices - rest).abs().max() > 0.05


def test_rest_frames_and_world_axes(smplx_model_file):
    body = load_body("smplx", smplx_model_file)
    frames = body.rest_joint_frames(body.default_shape().unsqueeze(0))[0]
    assert torch.allclose(frames[:, :3, :3], torch.eye(3).expand(len(SMPLX_JOINT_NAMES), 3, 3))
    identity = torch.eye(3).repeat(1, len(SMPLX_JOINT_NAMES), 1, 1)
    posed = body.forward(identity, torch.zeros(1, 3), body.default_shape().unsqueeze(0))
    joints = posed.joints[0]
    names = list(SMPLX_JOINT_NAMES)
    # Z up, facing -Y, left on +X in the world frame.
    assert joints[names.index("head"), 2] > joints[names.index("pelvis"), 2] > joints[names.index("left_ankle"), 2]
    assert joints[names.index("left_foot"), 1] < joints[names.index("left_ankle"), 1]
    assert joints[names.index("left_wrist"), 0] > 0.3 > -0.3 > joints[names.index("right_wrist"), 0]


def test_load_body_errors_name_the_file(tmp_path):
    missing = tmp_path / "nowhere" / "SMPLX_NEUTRAL.npz"
    with pytest.raises(BodyModelError, match="not found") as caught:
        load_body("smplx", missing)
    assert str(missing) in str(caught.value) and "SMPL-X website" in str(caught.value)
    with pytest.raises(BodyModelError, match="needs an SMPL-X model file"):
        load_body("smplx", None)
    partial = tmp_path / "partial.npz"
    np.savez(partial, v_template=np.zeros((SMPLX_NUM_VERTICES, 3)))
    with pytest.raises(BodyModelError, match="lacks"):
        load_body("smplx", partial)


def _run_rig_command(model_file: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROSEPOSE_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "engine", "rig", "--body", "smplx", "--model-file", str(model_file),
         "--out", str(tmp_path / "rig.npz")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.mark.parametrize("problem", ["missing", "corrupt"])
def test_bad_model_file_gives_one_json_error_line(tmp_path, problem):
    model_file = tmp_path / "SMPLX_NEUTRAL.npz"
    if problem == "corrupt":
        model_file.write_bytes(b"PK\x03\x04 this is not really a zip archive" * 10)
    result = _run_rig_command(model_file, tmp_path)
    assert result.returncode == 2
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    error = json.loads(lines[0])
    assert error["event"] == "error"
    assert str(model_file) in error["message"] and "SMPL-X website" in error["message"]
    assert "\n" not in error["message"]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "rig.npz").exists()


def test_rig_command_on_a_good_file(smplx_model_file, tmp_path):
    from engine.body.rig import read_rig

    result = _run_rig_command(smplx_model_file, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rig = read_rig(tmp_path / "rig.npz")
    assert rig.kind == "smplx" and list(rig.joint_names) == list(SMPLX_JOINT_NAMES)
    assert np.allclose(rig.model_to_world @ np.array([0.0, 1.0, 0.0]), [0.0, 0.0, 1.0])


def test_info_command_reports_bodies(smplx_model_file, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "engine", "info", "--model-file", str(smplx_model_file)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    info = json.loads(lines[0])
    assert info["event"] == "info" and info["torch"].startswith("2.13.0")
    assert info["bodies"]["anny"]["ok"] is True
    assert info["bodies"]["smplx"]["ok"] is True and info["bodies"]["smplx"]["file_ok"] is True
