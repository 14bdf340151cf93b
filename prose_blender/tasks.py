"""Background engine work as plain objects: ``start()``, ``poll()``, ``cancel()``,
``finish(context)``. A modal operator drives them with a timer; scripts and tests drive them
directly. Nothing in the scene changes before ``finish`` and ``finish`` checks everything it
reads before it writes, so a failure or a cancel leaves the scene as it was."""

from __future__ import annotations

import enum
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import runtime
from .addon import ADDON_ROOT, ENGINE_REQUIREMENTS
from .engine_process import EngineProcess
from .settings import EngineSettings, ProseError, smplx_model_file


class TaskState(enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Message:
    level: str  # "INFO", "WARNING" or "ERROR" (self.report's levels)
    text: str


class EngineTask:
    """Runs one or more commands in sequence; subclasses say which and what to do with them."""

    title = "Engine"

    def __init__(self, settings: EngineSettings):
        self.settings = settings
        self.state: TaskState | None = None
        self.progress = 0.0
        self.status_text = ""
        self.messages: list[Message] = []
        self.process: EngineProcess | None = None
        self._step = 0
        self._error_message = ""
        self.log_path: Path | None = None

    # -- subclass hooks
    def commands(self) -> list[list[str]]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Checks and files before the first command (may raise ProseError)."""

    def on_event(self, event: dict) -> None:
        pass

    def collect(self) -> None:
        """Read and check the outputs after a clean exit (may raise ProseError)."""

    def apply(self, context) -> None:
        """Write the outputs into Blender (only after ``collect`` succeeded)."""

    # -- driving
    def start(self) -> None:
        self.prepare()
        self.log_path = self.settings.work_dir() / "engine.log"
        self._commands = self.commands()
        self.state = TaskState.RUNNING
        self.status_text = f"{self.title}: starting"
        if not self._commands:
            # Nothing to run (e.g. a cached rig): go straight to reading the outputs.
            try:
                self.collect()
                self.state = TaskState.SUCCEEDED
            except ProseError as error:
                self._fail(str(error))
            return
        self._launch()
        runtime.set_active_task(self)

    def _launch(self) -> None:
        self.process = EngineProcess(
            self._commands[self._step], self.settings.process_environment(), ADDON_ROOT, self.log_path
        )

    def status_line(self) -> str:
        """What the status bar shows while the task runs (the operator adds "Esc to cancel")."""
        return f"{self.status_text} ({self.progress:.0%})"

    def poll(self) -> TaskState:
        if self.state is not TaskState.RUNNING or self.process is None:
            return self.state
        self._handle(self.process.events())
        if not self.process.finished():
            return self.state
        self._handle(self.process.events())
        self.process.close()
        code = self.process.returncode
        if code != 0 or self._error_message:
            self._fail(self._error_message or self._crash_message(code))
            return self.state
        self._step += 1
        if self._step < len(self._commands):
            try:
                self._launch()
            except ProseError as error:
                self._fail(str(error))
            return self.state
        try:
            self.collect()
        except ProseError as error:
            self._fail(str(error))
            return self.state
        self.progress = 1.0
        self.state = TaskState.SUCCEEDED
        return self.state

    def run_blocking(self, timeout_s: float = 3600.0) -> TaskState:
        """Start and poll until done (scripts, tests and operators run without a window)."""
        if self.state is None:
            self.start()
        deadline = time.monotonic() + timeout_s
        while self.poll() is TaskState.RUNNING:
            if time.monotonic() > deadline:
                self.cancel()
                self._fail(f"{self.title} took longer than {timeout_s:.0f} s and was stopped")
                break
            time.sleep(0.05)
        return self.state

    def _handle(self, events: list[dict]) -> None:
        for event in events:
            if event.get("event") == "error":
                self._error_message = str(event.get("message", "unknown error"))
            else:
                self.on_event(event)

    def _crash_message(self, code: int | None) -> str:
        text = [line for line in self.process.tail if line.strip() and not line.lstrip().startswith("{")]
        tail = " | ".join(text[-3:])
        return (
            f"{self.title} failed: the engine stopped unexpectedly (exit code {code}). "
            f"Last output: {tail or 'none'}. Full log: {self.log_path}"
        )

    def _fail(self, text: str) -> None:
        self.state = TaskState.FAILED
        self.status_text = f"{self.title}: failed"
        self.messages.append(Message("ERROR", text + " Nothing in the scene was changed."))
        runtime.clear_active_task(self)

    def cancel(self) -> None:
        if self.state is TaskState.RUNNING:
            self.process.cancel()
            self.state = TaskState.CANCELLED
            self.status_text = f"{self.title}: cancelled"
            self.messages.append(Message("WARNING", f"{self.title} cancelled; nothing in the scene was changed"))
        runtime.clear_active_task(self)

    def finish(self, context) -> bool:
        """Apply a successful result to Blender; True when the scene changed."""
        runtime.clear_active_task(self)
        if self.state is not TaskState.SUCCEEDED:
            return False
        try:
            self.apply(context)
        except ProseError as error:
            self.state = TaskState.FAILED
            self.messages.append(Message("ERROR", str(error)))
            return False
        return True

    def engine_argv(self, *arguments: str) -> list[str]:
        return [str(self.settings.interpreter()), "-m", "engine", *arguments]


def read_json(path: Path, what: str) -> dict:
    """A JSON object from ``path``; a missing or unreadable file is a ProseError."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProseError(f"The engine wrote no {what} ({path}); see the log in the cache folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProseError(f"The {what} {path} is not valid JSON ({error}); run the step again") from None
    if not isinstance(data, dict):
        raise ProseError(f"The {what} {path} is not a JSON object; run the step again")
    return data


def unique_stem(prefix: str) -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{int(time.monotonic_ns() % 1_000_000)}"


class CheckEngineTask(EngineTask):
    """``python -m engine info``: version, torch and body models, shown in the preferences."""

    title = "Check engine"

    def __init__(self, settings: EngineSettings):
        super().__init__(settings)
        self.info: dict = {}

    def commands(self):
        argv = ["info"]
        if self.settings.smplx_model_folder:
            try:
                argv += ["--model-file", str(smplx_model_file(self.settings, "NEUTRAL"))]
            except ProseError as error:
                self.messages.append(Message("WARNING", str(error)))
        return [self.engine_argv(*argv)]

    def on_event(self, event):
        if event.get("event") == "info":
            self.info = event

    def collect(self):
        tail = [line for line in self.process.tail if line.strip().startswith("{")]
        if not self.info and tail:
            try:
                self.info = json.loads(tail[-1])
            except ValueError:
                pass
        if not self.info:
            raise ProseError("The engine answered without its info line: update the engine environment")
        missing = missing_packages(self.info)
        if missing:
            raise ProseError(
                f"The engine interpreter lacks {', '.join(missing)}: click 'Create engine environment' in the "
                "ProsePose preferences (or pick an interpreter that has the engine's requirements)"
            )

    def apply(self, context):
        parts = [f"{k}: {v}" for k, v in self.info.items() if k != "event" and not isinstance(v, (dict, list))]
        bodies = self.info.get("bodies", {})
        if isinstance(bodies, dict):
            parts += [f"{name}: {'ok' if entry.get('ok') else 'unavailable'}" for name, entry in bodies.items() if isinstance(entry, dict)]
        summary = ", ".join(parts)
        runtime.last_engine_info = summary
        self.messages.append(Message("INFO", f"Engine OK ({summary})"))


def missing_packages(info: dict) -> list[str]:
    """The engine's required packages an ``engine info`` answer reports missing (torch, and
    anny, the built-in body)."""
    missing = []
    if not info.get("torch"):
        missing.append("torch")
    bodies = info.get("bodies")
    anny = bodies.get("anny") if isinstance(bodies, dict) else None
    if not (isinstance(anny, dict) and anny.get("ok")):
        missing.append("anny")
    return missing


class EnvironmentTask(EngineTask):
    """Create a virtual environment and install requirements/engine.txt into it."""

    title = "Create engine environment"

    def __init__(self, settings: EngineSettings, folder: Path, requirements: Path = ENGINE_REQUIREMENTS):
        super().__init__(settings)
        self.folder = Path(folder)
        self.requirements = Path(requirements)
        self._requirements = [
            line.split("==")[0].strip()
            for line in self.requirements.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        self._installed = 0

    @property
    def interpreter_path(self) -> Path:
        scripts = "Scripts" if sys.platform == "win32" else "bin"
        return self.folder / scripts / ("python.exe" if sys.platform == "win32" else "python")

    def commands(self):
        return [
            [sys.executable, "-m", "venv", str(self.folder)],
            [str(self.interpreter_path), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off", "-r", str(self.requirements)],
        ]

    def _launch(self):
        self.status_text = f"{self.title}: {'creating the environment' if self._step == 0 else 'installing packages'}"
        super()._launch()

    def _handle(self, events):
        super()._handle(events)
        if self._step == 1:
            self._installed += sum(1 for line in self.process.pop_text() if line.startswith("Collecting "))
            self.progress = 0.1 + 0.9 * min(1.0, self._installed / max(1, len(self._requirements)))

    def _crash_message(self, code):
        what = "creating the virtual environment" if self._step == 0 else "pip install"
        tail = " | ".join(line for line in list(self.process.tail)[-3:] if line.strip())
        return f"{what} failed (exit code {code}): {tail or 'no output'}. Full log: {self.log_path}"

    def collect(self):
        if not self.interpreter_path.is_file():
            raise ProseError(f"The environment has no interpreter at {self.interpreter_path}")

    def apply(self, context):
        from .preferences import preferences

        prefs = preferences(context)
        if prefs is not None:
            prefs.engine_python = str(self.interpreter_path)
        self.messages.append(Message("INFO", f"Engine environment ready: {self.interpreter_path}"))
