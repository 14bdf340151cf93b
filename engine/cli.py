"""Command-line entry point. Each subcommand lives in its own module under
``engine/commands/`` exposing ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; this file only dispatches.

Failures print one JSON line ``{"event": "error", "message": ...}`` on stdout and exit
non-zero, so callers (the Blender add-on, scripts) never have to read a traceback."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

COMMAND_MODULES: tuple[str, ...] = (
    "engine.commands.regions",
    "engine.commands.rig",
    "engine.commands.info",
    "engine.commands.contacts",
    "engine.commands.refine",
)


class EngineError(Exception):
    """An error with a message meant for the user (no traceback is shown)."""


def _available_commands():
    modules = []
    for name in COMMAND_MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as error:
            # A subcommand not built yet is simply absent; any other missing module is a bug.
            if error.name != name:
                raise
    return modules


def emit(event: str, **fields) -> None:
    """One JSON line on stdout, flushed at once (the add-on reads them as they come)."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    runners = {}
    for module in _available_commands():
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        runners[module.NAME] = module.run
    args = parser.parse_args(argv)
    try:
        return runners[args.command](args)
    except EngineError as error:
        emit("error", message=str(error))
        return 2
    except KeyboardInterrupt:
        emit("error", message="interrupted")
        return 130
