"""Hostile SMPL-X model files for tests (issue 18 point 1): every key and shape of a real model
file (``tests/support/smplx_model_file.py``) plus one object that creates the folder ``marker``
when it is unpickled, so a test sees whether loading the file ran code."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np


class _Planted:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def planted_npz(folder: Path, arrays: dict, marker: Path, name: str = "SMPLX_NEUTRAL.npz") -> Path:
    """An .npz with an extra array ``payload`` holding a pickled object."""
    path = Path(folder) / name
    payload = np.empty(1, dtype=object)
    payload[0] = _Planted(marker)
    with open(path, "wb") as stream:
        np.savez(stream, **arrays, payload=payload)
    return path


def planted_pkl(folder: Path, arrays: dict, marker: Path, name: str = "SMPLX_NEUTRAL.pkl") -> Path:
    """A .pkl dictionary of the arrays plus ``payload``, an object whose unpickling calls
    ``os.mkdir`` (pickled as ``posix.mkdir``)."""
    path = Path(folder) / name
    with open(path, "wb") as stream:
        pickle.dump({**arrays, "payload": _Planted(marker)}, stream, protocol=2)
    return path
