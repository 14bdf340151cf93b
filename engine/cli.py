"""Command-line entry point. Each subcommand lives in its own module under
``engine/commands/`` (named in ``COMMANDS``) exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; this file only dispatches.

Failures print one JSON line ``{"event": "error", "message": ...}`` on stdout and exit
non-zero, so callers (the Blender add-on, scripts) never have to read a traceback."""

from __future__ import annotations

import argparse
import importlib
import sys

from engine.commands.events import emit
from engine.errors import EngineError

COMMANDS: tuple[str, ...] = ("regions", "rig", "info", "contacts", "refine", "batch")


def _command_module(command: str):
    return importlib.import_module(f"engine.commands.{command}")


def _top_level_parser(with_help_texts: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        # One-line help needs each module; only --help pays for importing them all.
        summary = _command_module(name).HELP if with_help_texts else None
        subparsers.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        # Prints usage (or the full help) and exits: no command module is imported for a
        # typo, and a real command imports only its own module (torch costs seconds).
        _top_level_parser(with_help_texts=bool(argv) and argv[0] in ("-h", "--help")).parse_args(argv)
        return 2
    module = _command_module(argv[0])
    parser = argparse.ArgumentParser(prog=f"python -m engine {module.NAME}", description=module.HELP)
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    args.command = module.NAME
    try:
        return module.run(args)
    except EngineError as error:
        emit("error", message=str(error))
        return 2
    except KeyboardInterrupt:
        emit("error", message="interrupted")
        return 130
