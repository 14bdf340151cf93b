"""Where the add-on lives: its package name (the preferences' key) and its folder (the engine
ships inside the extension, so the engine process runs ``python -m engine`` from there)."""

from __future__ import annotations

from pathlib import Path

# "prosepose" when imported from a checkout, "bl_ext.<repository>.prosepose" when installed.
ADDON_PACKAGE: str = __package__.rpartition(".")[0]

# The extension's root folder: it holds engine/ and requirements/engine.txt.
ADDON_ROOT: Path = Path(__file__).resolve().parent.parent

ENGINE_REQUIREMENTS: Path = ADDON_ROOT / "requirements" / "engine.txt"

# Names of the data the add-on keeps on the objects it builds (ID properties: they travel with
# the .blend and hold no secret).
PROP_BODY = "prosepose_body"
PROP_REGIONS = "prosepose_regions"
REGION_ATTRIBUTE = "prosepose_regions"
REGION_MATERIAL = "ProsePose Regions"
