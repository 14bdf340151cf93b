"""Shared fixtures. Blender tests import the repository as the add-on package ``prosepose``
through a symlink in a temporary folder, the way Blender imports an installed extension."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(scope="session")
def addon_package(tmp_path_factory):
    """Import the repository as package ``prosepose`` and return the module."""
    import importlib

    parent = tmp_path_factory.mktemp("addon_parent")
    os.symlink(REPO_ROOT, parent / "prosepose")
    sys.path.insert(0, str(parent))
    try:
        yield importlib.import_module("prosepose")
    finally:
        sys.path.remove(str(parent))
