"""The engine's progress lines: one JSON object per line on stdout."""

from __future__ import annotations

import json
import sys


def emit(event: str, **fields) -> None:
    """One JSON line on stdout, flushed at once (the add-on reads them as they come)."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()
