"""``python -m engine info``: one JSON line describing the engine and the body models it can
load (the add-on's "Check engine" button runs it)."""

from __future__ import annotations

import argparse
import platform

from engine.commands.events import emit

NAME = "info"
HELP = "print one JSON line: engine version, Python, torch, available body models"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-file", default=None, help="an SMPL-X model file (.npz) to check")


def run(args: argparse.Namespace) -> int:
    import engine

    fields: dict = {"engine_version": engine.__version__, "python": platform.python_version()}
    try:
        import torch

        fields["torch"] = torch.__version__
    except ImportError:
        fields["torch"] = None
    bodies: dict = {}
    try:
        import anny

        bodies["anny"] = {"ok": True, "version": anny.__version__}
    except Exception as error:  # noqa: BLE001 - reported, not raised: this command diagnoses
        bodies["anny"] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    smplx_entry: dict = {}
    try:
        import smplx  # noqa: F401

        smplx_entry["package"] = True
    except Exception:  # noqa: BLE001
        smplx_entry["package"] = False
    if args.model_file:
        from engine.body.smplx_body import check_smplx_file

        try:
            check_smplx_file(args.model_file)
            smplx_entry.update(file=str(args.model_file), file_ok=True)
        except Exception as error:  # noqa: BLE001
            smplx_entry.update(file=str(args.model_file), file_ok=False, error=str(error))
    else:
        smplx_entry.update(file=None, file_ok=False)
    smplx_entry["ok"] = bool(smplx_entry["package"] and smplx_entry["file_ok"])
    bodies["smplx"] = smplx_entry
    fields["bodies"] = bodies
    emit("info", **fields)
    return 0
