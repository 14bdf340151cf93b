"""Process-wide state that must never be saved: the engine task in flight (at most one) and
the last engine check. Unregistering cancels the task so no process or timer outlives the
add-on."""

from __future__ import annotations

_active = {"task": None}
# Window-manager timers of running modal operators: (window_manager, timer).
_timers: list = []
last_engine_info: str = ""


def active_task():
    return _active["task"]


def set_active_task(task) -> None:
    _active["task"] = task


def clear_active_task(task) -> None:
    if _active["task"] is task:
        _active["task"] = None


def add_timer(window_manager, timer) -> None:
    _timers.append((window_manager, timer))


def remove_timer(timer) -> None:
    for entry in list(_timers):
        if entry[1] is timer or entry[1] == timer:
            _timers.remove(entry)
            try:
                entry[0].event_timer_remove(timer)
            except (ReferenceError, ValueError, RuntimeError):
                pass  # the window is gone


def register():
    pass


def unregister():
    task = _active["task"]
    if task is not None:
        task.cancel()
    _active["task"] = None
    for _, timer in list(_timers):
        remove_timer(timer)
