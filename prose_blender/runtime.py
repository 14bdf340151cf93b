"""Process-wide state that must never be saved: the engine task in flight (at most one) and
the last engine check. Unregistering cancels the task so no process or timer outlives the
add-on."""

from __future__ import annotations

_active = {"task": None}
last_engine_info: str = ""


def active_task():
    return _active["task"]


def set_active_task(task) -> None:
    _active["task"] = task


def clear_active_task(task) -> None:
    if _active["task"] is task:
        _active["task"] = None


def register():
    pass


def unregister():
    task = _active["task"]
    if task is not None:
        task.cancel()
    _active["task"] = None
