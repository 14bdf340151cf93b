"""``python -m engine regions``: draw a body's region map (front and back) to a PNG."""

from __future__ import annotations

import argparse

from engine.commands.events import emit
from engine.errors import EngineError
from engine.commands._body_args import add_body_arguments

NAME = "regions"
HELP = "draw the body-part regions of a body model (front and back views) to a PNG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_body_arguments(parser)
    parser.add_argument("--out", required=True, help="output .png file")


def run(args: argparse.Namespace) -> int:
    from engine.body import load_body
    from engine.body.region_map import body_regions, rest_geometry
    from engine.body.region_picture import draw_regions

    body = load_body(args.body, args.model_file)
    regions = body_regions(body)
    vertices, _ = rest_geometry(body)
    try:
        draw_regions(vertices, body.faces, regions.elementary, args.out,
                     title=f"{body.kind} body regions ({body.num_vertices} vertices)")
    except OSError as error:
        raise EngineError(f"cannot write {args.out}: {error}") from None
    emit("done", out=str(args.out), regions=len(regions.elementary), from_cache=regions.loaded_from_cache)
    return 0
