"""Blender-side logic (imports bpy, never torch): properties, preferences, body import,
scene <-> job files, engine process runner, keyframe write-back, region display."""

from . import preferences, properties, runtime

_SUBMODULES = (runtime, properties, preferences)


def register():
    for module in _SUBMODULES:
        module.register()


def unregister():
    for module in reversed(_SUBMODULES):
        module.unregister()
