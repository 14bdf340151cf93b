"""Issue 17 item 2: how well an AMASS (SMPL-X) clip retargeted onto Anny keeps its bones'
directions. On generated SMPL-X poses (random body and hand rotations, standing turned roots,
AMASS-style Z-up), the angle between each corresponding bone (upper arm, forearm, thigh, shin,
spine, neck) of the SMPL-X skeleton and of the retargeted Anny skeleton (the engine's Anny rest
frames, the add-on's retarget ``prose_blender/retarget.py``). Then the inverse (Anny -> SMPL-X,
what the "SMPL-X through the inverse retarget" export writes) on generated Anny poses (every one
of Anny's bones turned at random, twist and intermediate bones included). Prints median, 95th
percentile and worst per bone and overall, forward and inverse. With ``--model-file`` the SMPL-X
rest joints come from that file (exact), else from the project's canonical T-pose skeleton.

Usage: python benchmarks/retarget_benchmark.py [--poses 500] [--seed 0] [--model-file F]"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load_retarget():
    spec = importlib.util.spec_from_file_location("prosepose_retarget", ROOT / "prose_blender" / "retarget.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def anny_skeleton(retarget):
    import torch

    from engine.body import load_body

    body = load_body("anny")
    with torch.no_grad():
        rest = body.rest_joint_frames(body.default_shape()[None])[0].double().numpy()
    return retarget.TargetSkeleton(tuple(body.joint_names), tuple(body.parents), rest, retarget.anny_floor_z(rest, body.joint_names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poses", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-file", default=None)
    args = parser.parse_args()
    retarget = load_retarget()
    rest_joints = None
    if args.model_file:
        with np.load(args.model_file, allow_pickle=False) as data:
            rest_joints = data["J_regressor"] @ data["v_template"]
    mapper = retarget.Retarget(anny_skeleton(retarget), rest_joints)
    poses, trans = retarget.sample_poses(args.poses, args.seed)
    local, root = retarget.sample_target_poses(mapper.target, args.poses, args.seed + 1)
    summary = {"poses": args.poses, "skeleton": "model file" if args.model_file else "canonical", "height_scale": mapper.scale}
    for direction, errors in (("forward", retarget.bone_direction_errors(poses, trans, mapper)),
                              ("inverse", retarget.inverse_bone_direction_errors(local, root, mapper))):
        print(f"{direction} ({'SMPL-X -> Anny' if direction == 'forward' else 'Anny -> SMPL-X'}):")
        for bone, values in errors.items():
            row = {"median": float(np.median(values)), "p95": float(np.percentile(values, 95)), "worst": float(values.max())}
            print(f"  {bone:16s} median {row['median']:6.2f} deg  p95 {row['p95']:6.2f}  worst {row['worst']:6.2f}")
        every = np.concatenate(list(errors.values()))
        summary[direction] = {"median_deg": float(np.median(every)), "worst_deg": float(every.max()),
                              "within_10_deg": float((every < 10).mean())}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
