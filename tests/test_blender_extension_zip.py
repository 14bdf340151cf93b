"""The zip built by `make zip` installs with Blender's extension installer, enables, disables
and re-enables without errors or leftovers. Runs in a subprocess so the installed copy and
its user folders never mix with the other tests' Blender session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

from conftest import REPO_ROOT


def test_zip_honours_the_manifest_excludes(tmp_path):
    built = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "build_extension.py"), "--out", str(tmp_path)], capture_output=True, text=True, check=True)
    names = zipfile.ZipFile(built.stdout.strip()).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names and "requirements/engine.txt" in names
    assert any(n.startswith("engine/") for n in names) and any(n.startswith("prose_blender/") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "tools/", ".")) or "__pycache__" in n or n.endswith(".pyc") or n.startswith(".venv")]


def test_zip_installs_enables_disables_and_reenables_cleanly(tmp_path):
    built = subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "build_extension.py"), "--out", str(tmp_path / "dist")], capture_output=True, text=True, check=True)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "user"))
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "support" / "zip_install_check.py"), built.stdout.strip(),
         str(REPO_ROOT / ".venv" / "bin" / "python"), str(tmp_path / "cache")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stdout[-2000:] + run.stderr[-2000:]
    steps = json.loads(lines[-1][len("RESULT "):])
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert steps["install_result"] == ["FINISHED"]
    assert steps["installed"]["enabled"] and steps["has_prefs"]
    assert steps["installed"]["scene_props"] == ["prose"] and "refine" in steps["installed"]["operators"]
    for step in ("disabled", "disabled_again"):
        assert {k: v for k, v in steps[step].items()} == steps["before"], step
    assert steps["reenabled"] == steps["installed"]
    assert steps["check_engine"] == ["FINISHED"]
    # The engine ran from the installed copy, not from this checkout.
    assert '"event": "info"' in steps["engine_log"]
    assert steps["addon_root"] == str((tmp_path / "user" / "extensions" / "user_default" / "prosepose").resolve())
    assert (tmp_path / "user" / "extensions" / "user_default" / "prosepose" / "blender_manifest.toml").is_file()
