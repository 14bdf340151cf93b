"""The real engine rigs (Anny, and SMPL-X on the generated file) built in real headless
Blender: a pose written as Blender bone values deforms the mesh exactly as the engine's
forward pass does, so what the optimizer sees is what the artist sees."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import bpy  # noqa: F401 - the add-on fixture needs it imported first
import numpy as np
import pytest
import torch

from support.blender_helpers import enabled_addon, evaluated_world_vertices  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parent.parent


def _write_rig(kind: str, out: Path, model_file: Path | None) -> None:
    command = [sys.executable, "-m", "engine", "rig", "--body", kind, "--out", str(out)]
    if model_file is not None:
        command += ["--model-file", str(model_file)]
    env = {**os.environ, "PROSEPOSE_CACHE_DIR": str(out.parent / "cache")}
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kind", ["anny", "smplx"])
def test_blender_armature_deforms_like_the_engine(enabled_addon, tmp_path, kind, request):
    import roma
    from prosepose.prose_blender import bodies, keyframes, poses

    from engine.body import load_body

    model_file = request.getfixturevalue("smplx_model_file") if kind == "smplx" else None
    rig_path = tmp_path / f"{kind}_rig.npz"
    _write_rig(kind, rig_path, model_file)
    assert bpy.ops.prosepose.add_body(rig_file=str(rig_path), name="P1") == {"FINISHED"}
    armature = bpy.data.objects["P1"]
    info = bodies.body_info(armature)

    body = load_body(kind, model_file)
    generator = torch.Generator().manual_seed(7)
    joints = len(body.joint_names)
    rotations = roma.rotvec_to_rotmat(torch.randn(1, joints, 3, generator=generator) * 0.3)
    translation = torch.randn(1, 3, generator=generator) * 0.2
    quaternions = roma.rotmat_to_unitquat(rotations)[0]  # (x, y, z, w)
    engine_pose = poses.EnginePose(
        {name: tuple(float(v) for v in (q[3], q[0], q[1], q[2])) for name, q in zip(body.joint_names, quaternions)},
        tuple(float(v) for v in translation[0]),
    )
    bone_pose = poses.bone_pose_from_engine(armature, info, engine_pose)
    keyframes.write_pose_action(armature, [1], [bone_pose], "engine pose")
    bpy.context.scene.frame_set(1)

    expected = body.forward(rotations, translation, body.default_shape().unsqueeze(0)).vertices[0].double().numpy()
    error = np.abs(evaluated_world_vertices(armature.children[0]) - expected).max()
    print(f"{kind}: max vertex error Blender vs engine {error:.2e} m")
    assert error < 1e-4
