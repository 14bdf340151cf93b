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


@pytest.fixture(scope="session")
def smplx_model_file(tmp_path_factory):
    """A generated SMPL-X-layout model file (procedural body, never the licensed model),
    written once per test session."""
    from tests.support.smplx_model_file import write_smplx_model_file

    return write_smplx_model_file(tmp_path_factory.mktemp("smplx_model") / "SMPLX_TEST.npz")
