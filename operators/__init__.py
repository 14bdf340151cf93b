"""Thin operators: they turn their properties into settings and call prose_blender."""

from . import contacts, engine_setup, refine, subjects

_MODULES = (engine_setup, subjects, contacts, refine)


def register():
    for module in _MODULES:
        module.register()


def unregister():
    for module in reversed(_MODULES):
        module.unregister()
