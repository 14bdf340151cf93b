"""Run with the engine's interpreter (a real subprocess; Blender's side never imports torch):
pose a body with a seeded random pose and save the joint quaternions, the root translation and
the engine's posed world-frame vertices.

Usage: python engine_pose_script.py --body anny [--model-file F] --seed 0 --out pose.npz"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.body import load_body  # noqa: E402


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--body", required=True)
    parser.add_argument("--model-file", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    body = load_body(args.body, args.model_file)
    rng = np.random.default_rng(args.seed)
    count = len(body.joint_names)
    quaternions = np.concatenate([np.ones((count, 1)), rng.normal(scale=0.15, size=(count, 3))], 1)
    quaternions /= np.linalg.norm(quaternions, axis=1, keepdims=True)
    translation = rng.normal(scale=0.2, size=3)
    with torch.no_grad():
        output = body.forward(
            torch.tensor(quaternion_to_matrix(quaternions), dtype=torch.float32)[None],
            torch.tensor(translation, dtype=torch.float32)[None],
            body.default_shape()[None],
        )
    np.savez(
        args.out,
        joint_names=np.array(body.joint_names),
        quaternions=quaternions,
        translation=translation,
        vertices=output.vertices[0].double().numpy(),
    )


if __name__ == "__main__":
    main()
