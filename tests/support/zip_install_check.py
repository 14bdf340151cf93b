"""Run in a fresh interpreter with its own Blender user folders (BLENDER_USER_RESOURCES):
install the built zip with Blender's extension installer, enable, disable, re-enable and
disable again, and print one JSON line describing what was registered at each step."""

from __future__ import annotations

import json
import sys

import bpy

ZIP = sys.argv[1]
ENGINE_PYTHON = sys.argv[2]
CACHE = sys.argv[3]
MODULE = "bl_ext.user_default.prosepose"


def snapshot() -> dict:
    handlers = {
        name: len(getattr(bpy.app.handlers, name))
        for name in dir(bpy.app.handlers)
        if not name.startswith("_") and isinstance(getattr(bpy.app.handlers, name), list)
    }
    return {
        "scene_props": sorted(n for n in dir(bpy.types.Scene) if n.startswith("prose")),
        "types": sorted(n for n in dir(bpy.types) if "PROSE" in n.upper()),
        "operators": sorted(dir(bpy.ops.prosepose)),
        "handlers": handlers,
        "enabled": MODULE in bpy.context.preferences.addons,
    }


bpy.ops.wm.read_homefile(use_empty=True)
steps = {"before": snapshot()}
result = bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default", enable_on_install=True)
steps["installed"] = snapshot()
steps["install_result"] = sorted(result)
steps["has_prefs"] = MODULE in bpy.context.preferences.addons and hasattr(bpy.context.preferences.addons[MODULE].preferences, "lmm_api_key")
bpy.context.scene.prose.contact_strength = 2.0
# The engine shipped inside the installed extension runs from there.
prefs = bpy.context.preferences.addons[MODULE].preferences
prefs.engine_python, prefs.cache_folder = ENGINE_PYTHON, CACHE
steps["check_engine"] = sorted(bpy.ops.prosepose.check_engine())
steps["addon_root"] = str(sys.modules[MODULE + ".prose_blender.addon"].ADDON_ROOT)
steps["engine_log"] = open(f"{CACHE}/engine.log", encoding="utf-8").read()
bpy.ops.preferences.addon_disable(module=MODULE)
steps["disabled"] = snapshot()
bpy.ops.preferences.addon_enable(module=MODULE)
steps["reenabled"] = snapshot()
bpy.ops.preferences.addon_disable(module=MODULE)
steps["disabled_again"] = snapshot()
print("RESULT " + json.dumps(steps))
