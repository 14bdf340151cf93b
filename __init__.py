"""ProsePose for Blender: registers the add-on's modules and nothing else."""

from . import operators, panels, prose_blender

_MODULES = (prose_blender, operators, panels)


def register():
    for module in _MODULES:
        module.register()


def unregister():
    for module in reversed(_MODULES):
        module.unregister()
