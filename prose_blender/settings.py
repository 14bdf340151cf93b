"""Typed settings the operators build from the preferences and the scene, so the logic in
prose_blender never reads Blender properties directly and tests can build them by hand."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .addon import ADDON_ROOT


class ProseError(Exception):
    """A failure with a message meant for the user: what went wrong and what to do."""


@dataclass(frozen=True)
class LmmSettings:
    """How the engine reaches the language model."""

    base_url: str = ""
    model: str = ""
    # The key itself is only ever handed to the engine process through its environment.
    api_key: str = field(default="", repr=False)
    api_key_env: str = "OPENAI_API_KEY"
    samples: int = 20
    temperature: float = 0.7
    retries: int = 4
    timeout_s: float = 120.0
    # A replay file (schemas/replay.md) read instead of asking the model: the bundled
    # examples' answers, so the method runs with no key or network. Empty: ask the model.
    replay_file: str = ""


@dataclass(frozen=True)
class EngineSettings:
    """Where the engine process comes from and where it keeps its files."""

    python: str = ""
    cache_dir: str = ""
    smplx_model_folder: str = ""
    lmm: LmmSettings = field(default_factory=LmmSettings)
    # Allowed to reach the network (Blender's "Allow Online Access").
    online_access: bool = True

    def interpreter(self) -> Path:
        """The engine's Python, checked to exist."""
        if not self.python:
            raise ProseError(
                "No engine interpreter is set: open Preferences > Add-ons > ProsePose and pick "
                "a Python with the engine's requirements, or click 'Create engine environment'"
            )
        path = Path(bpy_path_abs(self.python))
        if not path.is_file():
            raise ProseError(
                f"The engine interpreter {path} does not exist: fix the path in the ProsePose "
                "preferences or click 'Create engine environment'"
            )
        return path

    def work_dir(self) -> Path:
        """Folder for rig, job, result, contacts and log files (created on demand)."""
        base = Path(bpy_path_abs(self.cache_dir)) if self.cache_dir else Path(tempfile.gettempdir()) / "prosepose"
        base.mkdir(parents=True, exist_ok=True)
        return base

    def process_environment(self) -> dict[str, str]:
        """Environment of the engine process: the API key travels only here."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ADDON_ROOT), env.get("PYTHONPATH", "")]))
        env["PYTHONUNBUFFERED"] = "1"
        if self.lmm.api_key:
            env[self.lmm.api_key_env or "OPENAI_API_KEY"] = self.lmm.api_key
        return env


def bpy_path_abs(path: str) -> str:
    """Resolve Blender's '//' relative paths when bpy is available."""
    if path.startswith("//"):
        import bpy

        return bpy.path.abspath(path)
    return os.path.expanduser(path)


def smplx_model_file(settings: EngineSettings, gender: str) -> Path:
    """The SMPL-X model file of the preferences' folder for ``gender`` (or the file itself)."""
    if not settings.smplx_model_folder:
        raise ProseError("SMPL-X needs your licensed model file: set the SMPL-X model folder in the ProsePose preferences")
    location = Path(bpy_path_abs(settings.smplx_model_folder))
    if location.is_file():
        return location
    for suffix in (".npz", ".pkl"):
        candidate = location / f"SMPLX_{gender.upper()}{suffix}"
        if candidate.is_file():
            return candidate
    raise ProseError(f"No SMPLX_{gender.upper()}.npz or .pkl in {location}: check the SMPL-X model folder in the preferences")
