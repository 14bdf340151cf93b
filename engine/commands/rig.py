"""``python -m engine rig``: write a body's rig description (mesh, armature, weights, regions)
for the Blender side, as an NPZ file (``schemas/rig.md``)."""

from __future__ import annotations

import argparse

import torch

from engine.commands.events import emit
from engine.errors import EngineError
from engine.commands._body_args import add_body_arguments

NAME = "rig"
HELP = "write the rig description (mesh, armature, skinning weights, regions) of a body model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_body_arguments(parser)
    parser.add_argument("--shape", type=float, nargs="+", default=None,
                        help="shape values (Anny phenotypes in [0, 1], or SMPL-X betas); default: neutral")
    parser.add_argument("--out", required=True, help="output .npz file")


def run(args: argparse.Namespace) -> int:
    from engine.body import load_body
    from engine.body.rig import build_rig, write_rig

    # Progress lines the add-on shows while it waits: the first load of the built-in body
    # builds its data on this machine (a minute or more), with nothing else to show for it.
    # (A model file the user names is read at once: a bad one gives its one error line only.)
    if args.body == "anny":
        emit("progress", message="loading the anny body (the first time on a machine it builds its data: a minute or more)",
             done=0, total=3)
    body = load_body(args.body, args.model_file)
    shape = body.default_shape()
    if args.shape is not None:
        if len(args.shape) > len(shape):
            raise EngineError(
                f"--shape takes at most {len(shape)} values for {args.body} ({', '.join(body.shape_names)})"
            )
        shape = shape.clone()
        shape[: len(args.shape)] = torch.tensor(args.shape, dtype=shape.dtype)
    emit("progress", message="deriving the regions and the armature", done=1, total=3)
    rig = build_rig(body, shape)
    emit("progress", message="writing the rig", done=2, total=3)
    try:
        write_rig(args.out, rig)
    except OSError as error:
        raise EngineError(f"cannot write {args.out}: {error.strerror}") from None
    emit("done", out=str(args.out), kind=rig.kind, joints=len(rig.joint_names), vertices=len(rig.vertices))
    return 0
