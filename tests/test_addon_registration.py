"""The extension registers and unregisters cleanly in real (headless) Blender."""

from __future__ import annotations

import bpy


def _snapshot():
    return (
        sorted(name for name in dir(bpy.types.Scene) if name.startswith("prose")),
        len(bpy.app.handlers.load_post),
        len(bpy.app.handlers.depsgraph_update_post),
        sorted(cls for cls in dir(bpy.types) if "PROSE" in cls.upper()),
    )


def test_register_unregister_twice(addon_package):
    bpy.ops.wm.read_homefile(use_empty=True)
    before = _snapshot()
    for _ in range(2):
        addon_package.register()
        addon_package.unregister()
        assert _snapshot() == before
