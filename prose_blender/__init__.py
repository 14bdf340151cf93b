"""Blender-side logic (imports bpy, never torch): properties, preferences, body import,
scene <-> job files, engine process runner, keyframe write-back, region display."""

_SUBMODULES = ()


def register():
    for module in _SUBMODULES:
        module.register()


def unregister():
    for module in reversed(_SUBMODULES):
        module.unregister()
