"""Run one engine command (``python -m engine ...``) in the background and read its JSON
progress lines without blocking Blender. Stdout and stderr go to one pipe; every line is copied
to a log file. The API key is never on the command line (only in the environment)."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

from .settings import ProseError


class EngineProcess:
    """A started child process: ``events()`` drains the JSON lines read so far."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path):
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self._lines: queue.Queue = queue.Queue()
        self.tail: deque[str] = deque(maxlen=20)
        self._text: list[str] = []
        self._log = open(log_path, "a", encoding="utf-8")
        self._log.write(f"\n$ {' '.join(self.argv)}\n")
        self._log.flush()
        try:
            self._process = subprocess.Popen(
                self.argv,
                cwd=str(cwd),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
            )
        except OSError as error:
            self._log.write(f"could not start: {error}\n")
            self._log.close()
            raise ProseError(
                f"Cannot start the engine ({self.argv[0]}): {error.strerror or error}. Check the "
                "engine interpreter in the ProsePose preferences or click 'Create engine environment'"
            ) from error
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def _read(self) -> None:
        for line in self._process.stdout:
            self._log.write(line)
            self._log.flush()
            self._lines.put(line.rstrip("\n"))
        self._process.stdout.close()

    def events(self) -> list[dict]:
        """JSON objects printed since the last call; other lines only go to the log and tail."""
        out = []
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return out
            self.tail.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                self._text.append(line)
                continue
            if isinstance(event, dict) and "event" in event:
                out.append(event)

    def pop_text(self) -> list[str]:
        """Non-JSON lines seen by ``events()`` since the last call."""
        text, self._text = self._text, []
        return text

    def finished(self) -> bool:
        return self._process.poll() is not None and not self._reader.is_alive()

    @property
    def returncode(self) -> int | None:
        return self._process.poll()

    def cancel(self, grace_s: float = 5.0) -> None:
        """SIGTERM (the engine stops cleanly without writing its result), then SIGKILL."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self.close()

    def wait(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.finished() and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        self._reader.join(timeout=2.0)
        if not self._log.closed:
            self._log.write(f"[exit code {self._process.poll()}]\n")
            self._log.close()
