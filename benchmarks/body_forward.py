"""Print the cost of one body forward pass (the optimizer's inner step): B bodies, a few
thousand requested vertices, with and without a gradient through the shape.

usage: python benchmarks/body_forward.py [--body anny|smplx] [--model-file F]
       [--batch 2] [--vertices 3000] [--repeats 50]

Reports the best of five timing rounds (the machine may be shared)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.body import load_body  # noqa: E402


def _best_ms(step, repeats: int) -> float:
    step()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            step()
        best = min(best, (time.perf_counter() - start) / repeats * 1000)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--body", default="anny")
    parser.add_argument("--model-file", default=None)
    parser.add_argument("--pose-correctives", action="store_true")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--vertices", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    body = load_body(args.body, args.model_file, pose_correctives=args.pose_correctives)
    generator = torch.Generator().manual_seed(0)
    joints = len(body.joint_names)
    axis_angle = torch.randn(args.batch, joints, 3, generator=generator) * 0.3
    import roma

    rotations = roma.rotvec_to_rotmat(axis_angle).requires_grad_(True)
    translation = torch.zeros(args.batch, 3, requires_grad=True)
    vertex_ids = torch.randperm(body.num_vertices, generator=generator)[: args.vertices]
    for shape_grad in (False, True):
        shape = body.default_shape().expand(args.batch, -1).clone().requires_grad_(shape_grad)

        def forward():
            return body.forward(rotations, translation, shape, vertex_ids)

        def forward_backward():
            forward().vertices.square().sum().backward()

        print(
            f"{args.body} B={args.batch} vertices={len(vertex_ids)} shape_grad={shape_grad} "
            f"threads={torch.get_num_threads()}: forward {_best_ms(forward, args.repeats):.2f} ms, "
            f"forward+backward {_best_ms(forward_backward, args.repeats):.2f} ms"
        )


if __name__ == "__main__":
    main()
