"""Errors meant for the user: one clear line, no traceback. Imported by every room of the
engine; imports nothing of it."""

from __future__ import annotations


class EngineError(Exception):
    """An error with a message meant for the user (no traceback is shown)."""


class BodyModelError(EngineError):
    """A body model cannot be loaded: unknown kind, missing or unreadable model file."""
