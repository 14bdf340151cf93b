"""Files written whole or not at all. Imports nothing of the engine."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """A stream on a temporary file beside ``path``. When the block ends normally the file is
    flushed to disk and renamed to ``path``; when it raises, the temporary file is removed and
    any earlier file at ``path`` stays as it was. Why: a run killed or failing half-way must
    never leave half a file where a reader finds it."""
    target = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, mode, encoding=encoding) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())  # on disk before it takes the name
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
