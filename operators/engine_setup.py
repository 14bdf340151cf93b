"""Preferences buttons: create the engine environment, check the engine."""

from __future__ import annotations

from pathlib import Path

import bpy

from ..prose_blender.preferences import engine_settings, preferences
from ..prose_blender.settings import ProseError, bpy_path_abs
from ..prose_blender.tasks import CheckEngineTask, EnvironmentTask
from .task_operator import TaskOperatorMixin


class PROSEPOSE_OT_create_engine_environment(TaskOperatorMixin, bpy.types.Operator):
    """Create a Python virtual environment and install the engine's pinned requirements into it (downloads packages with pip; takes a few minutes)"""

    bl_idname = "prosepose.create_engine_environment"
    bl_label = "Create engine environment"
    bl_options = {"REGISTER"}

    def create_task(self, context):
        settings = engine_settings(context)
        if not settings.online_access:
            raise ProseError("Online access is disabled: pip needs it to download the engine's packages. Allow it in Preferences > System > Network")
        prefs = preferences(context)
        folder = prefs.environment_folder if prefs is not None else ""
        target = Path(bpy_path_abs(folder)) if folder else settings.work_dir() / "engine-venv"
        return EnvironmentTask(settings, target)


class PROSEPOSE_OT_check_engine(TaskOperatorMixin, bpy.types.Operator):
    """Run the engine once and show its version, torch and available body models"""

    bl_idname = "prosepose.check_engine"
    bl_label = "Check engine"
    bl_options = {"REGISTER"}

    def create_task(self, context):
        return CheckEngineTask(engine_settings(context))


classes = (PROSEPOSE_OT_create_engine_environment, PROSEPOSE_OT_check_engine)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
