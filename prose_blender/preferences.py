"""Add-on preferences: where the engine lives and how it reaches the language model. The API
key lives here, in the user preferences only; it never enters scene data, and reaches the
engine only through the process environment."""

from __future__ import annotations

import bpy
from bpy.props import FloatProperty, IntProperty, StringProperty

from . import runtime
from .addon import ADDON_PACKAGE
from .settings import EngineSettings, LmmSettings


class ProsePreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    engine_python: StringProperty(name="Engine interpreter", description="Python interpreter that has the engine's requirements (torch, smplx, anny, openai)", subtype="FILE_PATH")
    environment_folder: StringProperty(name="Environment folder", description="Where 'Create engine environment' makes the virtual environment", subtype="DIR_PATH")
    smplx_model_folder: StringProperty(name="SMPL-X model folder", description="Folder with your licensed SMPLX_NEUTRAL/MALE/FEMALE model files, or one model file", subtype="FILE_PATH")
    lmm_base_url: StringProperty(name="Base URL", description="OpenAI-compatible endpoint of the language model (empty: OpenAI)")
    lmm_model: StringProperty(name="Model", description="Multimodal model name at that endpoint", default="gpt-4o")
    lmm_api_key: StringProperty(name="API key", description="Key for the endpoint; stored only in your user preferences, never in .blend files; leave empty to use the environment variable below", subtype="PASSWORD")
    lmm_api_key_env: StringProperty(name="Key variable", description="Environment variable holding the API key when the field above is empty", default="OPENAI_API_KEY")
    lmm_samples: IntProperty(name="Samples", description="How many answers to ask the language model for (the paper uses 20)", min=1, max=100, default=20)
    lmm_temperature: FloatProperty(name="Temperature", description="Sampling temperature of the language model (the paper uses 0.7)", min=0.0, max=2.0, default=0.7)
    lmm_retries: IntProperty(name="Retries", description="How often a failed or rate-limited request is tried again", min=0, max=10, default=4)
    lmm_timeout: FloatProperty(name="Timeout", description="Seconds to wait for one answer of the language model", min=1.0, max=1200.0, default=120.0, unit="TIME_ABSOLUTE")
    lmm_replay_file: StringProperty(name="Replay answers", description="Answers file to read instead of asking the language model (an example's answers.json; see the user guide); empty: ask the model", subtype="FILE_PATH")
    cache_folder: StringProperty(name="Cache folder", description="Folder for rigs, jobs, results, contacts, logs and the language-model cache (empty: system temporary folder)", subtype="DIR_PATH")

    def draw(self, context):
        layout = self.layout
        engine = layout.box()
        engine.label(text="Engine")
        engine.prop(self, "engine_python")
        engine.prop(self, "environment_folder")
        row = engine.row()
        row.operator("prosepose.create_engine_environment", icon="CONSOLE")
        row.operator("prosepose.check_engine", icon="CHECKMARK")
        task = runtime.active_task()
        if task is not None:
            engine.label(text=task.status_text, icon="TIME")
        if runtime.last_engine_info:
            engine.label(text=runtime.last_engine_info)
        engine.prop(self, "smplx_model_folder")
        engine.prop(self, "cache_folder")
        lmm = layout.box()
        lmm.label(text="Language model")
        lmm.prop(self, "lmm_base_url")
        lmm.prop(self, "lmm_model")
        lmm.prop(self, "lmm_api_key")
        lmm.label(text="The key is kept only in your user preferences, never in .blend files.", icon="INFO")
        lmm.prop(self, "lmm_api_key_env")
        row = lmm.row()
        row.prop(self, "lmm_samples")
        row.prop(self, "lmm_temperature")
        row = lmm.row()
        row.prop(self, "lmm_retries")
        row.prop(self, "lmm_timeout")
        lmm.prop(self, "lmm_replay_file")


def preferences(context=None) -> ProsePreferences | None:
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


def engine_settings(context=None) -> EngineSettings:
    """The preferences as a typed settings object (defaults when the add-on is not enabled
    through Blender's add-on system, e.g. registered by a script)."""
    prefs = preferences(context)
    online = bool(getattr(bpy.app, "online_access", True))
    if prefs is None:
        return EngineSettings(online_access=online)
    return EngineSettings(
        python=prefs.engine_python,
        cache_dir=prefs.cache_folder,
        smplx_model_folder=prefs.smplx_model_folder,
        lmm=LmmSettings(
            base_url=prefs.lmm_base_url,
            model=prefs.lmm_model,
            api_key=prefs.lmm_api_key,
            api_key_env=prefs.lmm_api_key_env or "OPENAI_API_KEY",
            samples=prefs.lmm_samples,
            temperature=prefs.lmm_temperature,
            retries=prefs.lmm_retries,
            timeout_s=prefs.lmm_timeout,
            replay_file=prefs.lmm_replay_file,
        ),
        online_access=online,
    )


classes = (ProsePreferences,)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
