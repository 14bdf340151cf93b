"""Errors of the body models, meant for the user (one clear line, no traceback)."""

from __future__ import annotations

from engine.cli import EngineError


class BodyModelError(EngineError):
    """A body model cannot be loaded: unknown kind, missing or unreadable model file."""
