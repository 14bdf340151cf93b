"""The body-selection options several subcommands share."""

from __future__ import annotations

import argparse

from engine.body import BODY_KINDS


def add_body_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--body", choices=BODY_KINDS, default="anny", help="body model (default: anny)")
    parser.add_argument(
        "--model-file",
        default=None,
        help="SMPL-X model file (.npz, or the official .pkl) for --body smplx: your own copy from the SMPL-X "
        "website; it is read as numbers only (a file holding pickled objects is refused)",
    )
