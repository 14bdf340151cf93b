"""The two sides meet only through files: engine/ never imports Blender or the add-on, and
the Blender side never imports the engine's heavy dependencies."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO_ROOT

ENGINE_FORBIDDEN = {"bpy", "mathutils", "bmesh", "prose_blender", "operators", "panels", "bpy_extras"}
BLENDER_FORBIDDEN = {"torch", "smplx", "openai", "anny", "engine"}
BLENDER_SIDE = ("prose_blender", "operators", "panels")


def _imported_top_level_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level > 0 and node.module:
            # Relative imports that climb out of the package name a sibling package.
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in {
            "import_module",
            "__import__",
        }:
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.add(node.args[0].value.split(".")[0])
    return names


def _python_files(folder: str) -> list[Path]:
    return sorted((REPO_ROOT / folder).rglob("*.py"))


def test_engine_never_imports_blender():
    files = _python_files("engine")
    assert files, "engine/ has no Python files"
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(_imported_top_level_names(path) & ENGINE_FORBIDDEN)
        for path in files
    }
    assert not {k: v for k, v in offenders.items() if v}


@pytest.mark.parametrize("folder", BLENDER_SIDE)
def test_blender_side_never_imports_engine_dependencies(folder):
    files = _python_files(folder)
    assert files, f"{folder}/ has no Python files"
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(_imported_top_level_names(path) & BLENDER_FORBIDDEN)
        for path in files
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_checker_catches_a_forbidden_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom bpy.types import Operator\nimport importlib\nimportlib.import_module('torch.nn')\n")
    assert _imported_top_level_names(sample) >= {"bpy", "torch"}
