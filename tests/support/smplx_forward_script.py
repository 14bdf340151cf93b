"""Run with the engine's interpreter (Blender's side never imports torch): the engine's world
vertices of SMPL-X poses on a model file.

Usage: python smplx_forward_script.py MODEL.npz POSES.json OUT.npz, POSES.json holding
{"shape": [...], "poses": [{"rotations": {joint: [w, x, y, z]}, "root_translation": [x, y, z]}]};
OUT.npz has ``vertices`` (P, V, 3)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.body.smplx_body import SmplxBody  # noqa: E402


def quaternion_matrix(q) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def main() -> None:
    model, poses_path, out = sys.argv[1:4]
    request = json.loads(Path(poses_path).read_text())
    body = SmplxBody(model, dtype=torch.float64)
    shape = torch.tensor(request["shape"], dtype=torch.float64)[None]
    vertices = []
    for pose in request["poses"]:
        matrices = np.stack([quaternion_matrix(pose["rotations"][name]) for name in body.joint_names])
        with torch.no_grad():
            output = body.forward(
                torch.tensor(matrices)[None], torch.tensor(pose["root_translation"], dtype=torch.float64)[None], shape
            )
        vertices.append(output.vertices[0].numpy())
    np.savez(out, vertices=np.stack(vertices))


if __name__ == "__main__":
    main()
