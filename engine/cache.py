"""Where the engine keeps derived data (region maps): never anything licensed, never keys."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$PROSEPOSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/prosepose``, else ``~/.cache/prosepose``."""
    explicit = os.environ.get("PROSEPOSE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "prosepose"
