"""Reading a body model file (SMPL-X ``.npz`` or ``.pkl``) as plain numeric arrays, without
ever running code from it.

Model files come from downloads and colleagues. A ``.npz`` may hold an array of Python objects,
stored as a pickle that runs code when it is read with ``allow_pickle=True`` (what the ``smplx``
package does with every array of the file); a ``.pkl`` is a pickle through and through. So:

- ``.npz``: every array is read with ``allow_pickle=False``; an array of objects anywhere in
  the file (not only among the arrays the body needs) refuses the whole file, naming it.
- ``.pkl``: a restricted unpickler that can build numpy arrays, dtypes and scalars and plain
  containers (dict, list, tuple, set, str, numbers) and nothing else; any other object the file
  asks for (a function, a class, chumpy, scipy) refuses the file, naming it and saying how to
  get or make the ``.npz`` instead.

``ModelFileError`` messages are one line meant for the user (the caller adds the file name).
"""

from __future__ import annotations

import importlib
import pickle
import warnings
from pathlib import Path

import numpy as np

PICKLE_SUFFIXES = (".pkl", ".pickle")

CONVERT_HINT = (
    "use the .npz download of the SMPL-X website instead, or convert the file once in a Python "
    "you trust: import pickle, numpy; numpy.savez('SMPLX_NEUTRAL.npz', **{k: numpy.asarray(v) for k, v "
    "in pickle.load(open('SMPLX_NEUTRAL.pkl', 'rb'), encoding='latin1').items()})"
)

# (module, name) a .pkl model file may ask for: what pickles of numpy arrays, dtypes, scalars and
# plain containers use (numpy 1.x and 2.x module names, Python 2 and 3 pickles).
_ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("__builtin__", "set"),
        ("__builtin__", "frozenset"),
    }
)


class ModelFileError(ValueError):
    """The model file cannot be read safely or is not what it claims; one line for the user."""


def _resolve(module: str, name: str):
    """The allowed object, under numpy 1.x or 2.x module names."""
    candidates = [module]
    if module.startswith("numpy.core"):
        candidates.append("numpy._core" + module[len("numpy.core"):])
    elif module.startswith("numpy._core"):
        candidates.append("numpy.core" + module[len("numpy._core"):])
    elif module == "__builtin__":
        candidates = ["builtins"]
    for candidate in candidates:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"{module}.{name} is not available in this numpy")


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return _resolve(module, name)
        raise ModelFileError(
            f"it asks to build {module}.{name} when loaded, and this engine reads only numpy arrays "
            f"and plain containers from a .pkl (loading it could run code); {CONVERT_HINT}"
        )

    def persistent_load(self, pid):
        raise ModelFileError(f"it refers to external objects, which a model file never needs; {CONVERT_HINT}")


def _read_pickle(path: Path) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as stream:
            data = _ArraysOnlyUnpickler(stream, encoding="latin1").load()
    except ModelFileError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError, RecursionError, UnicodeDecodeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelFileError(f"cannot be read as a .pkl model file ({reason})") from None
    if not isinstance(data, dict):
        raise ModelFileError(f"a .pkl model file holds a dictionary of arrays, this one a {type(data).__name__}")
    arrays = {}
    for key, value in data.items():
        # Plain extras (name tables) are harmless once built; only numeric arrays are kept.
        if isinstance(key, str) and isinstance(value, np.ndarray) and not value.dtype.hasobject:
            arrays[key] = value
    return arrays


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    arrays = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            try:
                value = data[key]
            except ValueError as error:
                if "allow_pickle" in str(error) or "Object arrays" in str(error):
                    raise ModelFileError(
                        f"its array {key!r} holds Python objects (a pickle, which could run code when "
                        "loaded), so the file is refused; a genuine SMPL-X .npz holds only numbers: "
                        "download it again from the SMPL-X website"
                    ) from None
                raise
            if isinstance(value, np.ndarray):
                arrays[key] = value
    return arrays


def read_model_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The numeric arrays of a ``.npz`` or ``.pkl`` model file, read without running any code
    from it. Raises ModelFileError (object arrays, forbidden pickle contents) and, for files
    that are not archives at all, the reading errors of numpy (OSError, ValueError,
    zipfile.BadZipFile, EOFError)."""
    path = Path(path)
    with open(path, "rb") as stream:
        magic = stream.read(4)
    if magic.startswith(b"PK"):
        return _read_npz(path)
    if path.suffix.lower() in PICKLE_SUFFIXES or magic.startswith(b"\x80"):
        return _read_pickle(path)
    return _read_npz(path)
