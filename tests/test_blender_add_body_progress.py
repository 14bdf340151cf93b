"""Add body on a fresh machine (issue 16 item 9): the engine builds the body data first (about
a minute for Anny) and says nothing while it does. The operator runs it in the background like
Refine: the status bar says what is happening and for how long (never a bar stuck at 0%),
shows the engine's progress lines, Esc stops the engine and leaves the scene and the rig cache
as they were; a rig file cut short by a cancel or a crash is never kept as the cached rig."""

from __future__ import annotations

import re
import stat
import sys
import time

import bpy
import pytest

from conftest import REPO_ROOT
from support import small_rig
from support.blender_helpers import enabled_addon, scene_digest  # noqa: F401


class _Event:
    def __init__(self, type_, value="PRESS"):
        self.type, self.value = type_, value


class _ModalDriver:
    """Feeds the operator's modal() the timer and key events Blender's event loop would (a
    headless bpy has none); collects the reports."""

    def __init__(self, task):
        from prosepose.operators.task_operator import TaskOperatorMixin

        self.reports = []
        self._task = task
        self._timer = None
        self.modal = TaskOperatorMixin.modal.__get__(self)
        self._conclude = TaskOperatorMixin._conclude.__get__(self)

    def report(self, levels, text):
        self.reports.append((set(levels), text))


@pytest.fixture
def rig_engine(enabled_addon, tmp_path, monkeypatch):
    """Points the engine interpreter at the stand-in; returns a function setting its mode."""
    source = tmp_path / "source-rig.npz"
    small_rig.make_rig(source)
    script = tmp_path / "standin-python"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} {REPO_ROOT / 'tests' / 'support' / 'standin_rig_engine.py'} \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    bpy.context.preferences.addons["prosepose"].preferences.engine_python = str(script)
    monkeypatch.setenv("PROSEPOSE_RIG_SOURCE", str(source))
    monkeypatch.setenv("PROSEPOSE_RIG_CALLS", str(tmp_path / "calls.txt"))

    def mode(name: str, silent_s: float = 0.0):
        monkeypatch.setenv("PROSEPOSE_RIG_STANDIN", name)
        monkeypatch.setenv("PROSEPOSE_RIG_SILENT_S", str(silent_s))

    mode.calls = lambda: len((tmp_path / "calls.txt").read_text().splitlines()) if (tmp_path / "calls.txt").exists() else 0
    mode.rigs = lambda: sorted(p.name for p in (tmp_path / "cache" / "rigs").glob("*"))
    return mode


def test_add_body_shows_progress_and_esc_stops_the_engine(rig_engine, monkeypatch):
    from prosepose.operators import task_operator
    from prosepose.prose_blender import runtime
    from prosepose.prose_blender.body_task import AddBodyTask
    from prosepose.prose_blender.preferences import engine_settings
    from prosepose.prose_blender.tasks import TaskState

    shown = []
    monkeypatch.setattr(task_operator, "_set_status", lambda context, text: shown.append(text))
    rig_engine("hang", silent_s=1.5)
    before, objects = scene_digest(), sorted(o.name for o in bpy.data.objects)
    task = AddBodyTask(engine_settings(), "anny", name="P1")
    task.start()
    assert task.state is TaskState.RUNNING and runtime.active_task() is task
    assert not bpy.ops.prosepose.add_body.poll()  # one engine job at a time
    driver = _ModalDriver(task)
    deadline = time.monotonic() + 30
    while task.progress == 0 or not task.partial_path.is_file():
        assert driver.modal(bpy.context, _Event("TIMER")) == {"RUNNING_MODAL"} and time.monotonic() < deadline
        time.sleep(0.05)
    assert driver.modal(bpy.context, _Event("MOUSEMOVE")) == {"PASS_THROUGH"}
    # While the engine is silent: what it is doing, that the first run is long, the seconds so
    # far; no percentage (a bar stuck at 0% reads as a hang).
    first = next(i for i, line in enumerate(shown) if "%" in line)
    silent = shown[:first]
    assert silent and all("%" not in line and line.endswith("- Esc to cancel") for line in silent)
    assert all("building the Anny body" in line and "first time" in line for line in silent)
    seconds = [int(re.search(r" - (\d+) s - Esc", line).group(1)) for line in silent]
    assert seconds == sorted(seconds) and seconds[-1] >= 1
    # Then the engine's progress line, with its fraction, in the status bar and the panel.
    assert re.fullmatch(r"Add body: building the Anny body data - \d+ s \(25%\) - Esc to cancel", shown[-1])
    assert task.status_text.startswith("Add body: building the Anny body data - ")
    # Esc while the engine writes the rig: it stops, nothing changes, nothing half-written stays.
    assert driver.modal(bpy.context, _Event("ESC")) == {"CANCELLED"}
    assert task.state is TaskState.CANCELLED and task.process.returncode is not None
    assert any("cancelled" in text and "nothing in the scene was changed" in text for _, text in driver.reports)
    assert shown[-1] is None and runtime.active_task() is None and bpy.ops.prosepose.add_body.poll()
    assert scene_digest() == before and sorted(o.name for o in bpy.data.objects) == objects
    assert rig_engine.rigs() == []
    # The next Add body runs the engine again and caches its rig; a third one uses the cache.
    rig_engine("ok")
    assert bpy.ops.prosepose.add_body(kind="anny", name="P1") == {"FINISHED"}
    assert bpy.context.scene.prose.person_1 == bpy.data.objects["P1"] and rig_engine.calls() == 2
    (cached,) = rig_engine.rigs()
    assert re.fullmatch(r"rig-anny-[0-9a-f]{16}\.npz", cached)
    assert bpy.ops.prosepose.add_body(kind="anny", name="P2") == {"FINISHED"}
    assert rig_engine.calls() == 2 and bpy.context.scene.prose.person_2 == bpy.data.objects["P2"]


def test_a_rig_cut_short_is_never_kept(rig_engine, tmp_path):
    rig_engine("truncated")
    before = scene_digest()
    with pytest.raises(RuntimeError, match="Cannot read the rig file.*Nothing in the scene was changed"):
        bpy.ops.prosepose.add_body(kind="anny", name="P1")
    assert scene_digest() == before and not bpy.data.objects and rig_engine.rigs() == []
    rig_engine("ok")
    assert bpy.ops.prosepose.add_body(kind="anny", name="P1") == {"FINISHED"}
    assert rig_engine.calls() == 2
    # A cached rig damaged on disk (a crash of an older version mid-write) is built again.
    (cached,) = rig_engine.rigs()
    path = tmp_path / "cache" / "rigs" / cached
    path.write_bytes(path.read_bytes()[:100])
    assert bpy.ops.prosepose.add_body(kind="anny", name="P2") == {"FINISHED"}
    assert rig_engine.calls() == 3 and rig_engine.rigs() == [cached]
    assert bpy.context.scene.prose.person_2 == bpy.data.objects["P2"]
