"""The one way operators run engine work: a task object (prose_blender.tasks) driven by a
timer in a modal operator when invoked from the UI, or run to the end by ``execute`` when
called from a script. Esc cancels; messages are replayed through ``self.report``."""

from __future__ import annotations

from ..prose_blender import runtime
from ..prose_blender.settings import ProseError
from ..prose_blender.tasks import EngineTask, TaskState


def _set_status(context, text: str | None) -> None:
    workspace = getattr(context, "workspace", None)
    if workspace is not None:
        workspace.status_text_set(text)


def _redraw(context) -> None:
    screen = getattr(context, "screen", None)
    if screen is not None:
        for area in screen.areas:
            if area.type in {"VIEW_3D", "PREFERENCES"}:
                area.tag_redraw()


class TaskOperatorMixin:
    """Mix into a bpy.types.Operator and define ``create_task(context)``."""

    @classmethod
    def poll(cls, context):
        return runtime.active_task() is None

    def create_task(self, context) -> EngineTask:
        raise NotImplementedError

    def _begin(self, context) -> EngineTask | None:
        try:
            task = self.create_task(context)
            task.start()
        except ProseError as error:
            self.report({"ERROR"}, str(error))
            return None
        return task

    def execute(self, context):
        task = self._begin(context)
        if task is None:
            return {"CANCELLED"}
        task.run_blocking()
        return self._conclude(context, task)

    def invoke(self, context, event):
        task = self._begin(context)
        if task is None:
            return {"CANCELLED"}
        if task.state is not TaskState.RUNNING or context.window is None:
            task.run_blocking()
            return self._conclude(context, task)
        self._task = task
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(0.1, window=context.window)
        runtime.add_timer(window_manager, self._timer)
        window_manager.modal_handler_add(self)
        _set_status(context, f"{task.status_text} - Esc to cancel")
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        task = self._task
        if event.type == "ESC" and event.value == "PRESS":
            task.cancel()
            return self._conclude(context, task)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        state = task.poll()
        _set_status(context, f"{task.status_line()} - Esc to cancel")
        _redraw(context)
        if state is TaskState.RUNNING:
            return {"RUNNING_MODAL"}
        return self._conclude(context, task)

    def _conclude(self, context, task: EngineTask):
        timer = getattr(self, "_timer", None)
        if timer is not None:
            runtime.remove_timer(timer)
            self._timer = None
        _set_status(context, None)
        changed = task.finish(context)
        for message in task.messages:
            self.report({message.level}, message.text)
        _redraw(context)
        return {"FINISHED"} if changed else {"CANCELLED"}
