"""Add body: get the rig description (``python -m engine rig``, cached per body model file) and
build the armature and mesh from it.

The engine runs in the background like Refine (the modal operator of
``operators/task_operator.py``): the first Add body on a machine waits while the engine builds
the body model's data (a minute or more for Anny), so the status bar and the Subjects panel say
what is happening and for how long, show the engine's ``progress`` lines when it prints them
(``{"event": "progress", "message": ..., "done": k, "total": n}``, every field optional), and
Esc stops the engine. The engine writes the rig to a temporary file that becomes the cached
rig only after a clean exit and a successful read, so a cancel or a crash never leaves a
half-written rig behind (a cached rig that cannot be read is built again). Nothing in the
scene changes before the rig is read."""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from pathlib import Path

from .bodies import build_body, place_new_body
from .rig import Rig, load_rig
from .settings import EngineSettings, ProseError, bpy_path_abs, smplx_model_file
from .tasks import EngineTask, Message, TaskState


_partial_counter = itertools.count()
BODY_NAMES = {"anny": "Anny", "smplx": "SMPL-X"}


class AddBodyTask(EngineTask):
    title = "Add body"

    def __init__(self, settings: EngineSettings, kind: str, gender: str = "NEUTRAL", rig_file: str = "", name: str = ""):
        super().__init__(settings)
        self.kind = kind
        self.gender = gender
        self.rig_file = rig_file
        self.name = name or ("SMPLX" if kind == "smplx" else "Anny")
        self.rig: Rig | None = None
        self.built = None
        self.partial_path: Path | None = None  # where the running engine writes the rig
        self.started_at: float | None = None
        self._engine_message = ""

    def prepare(self):
        self.model_file = ""
        if self.scene_full():
            raise ProseError(
                "Person 1 and Person 2 are both set and ProsePose works with one or two people: "
                "clear Person 2 (or Person 1) in the Subjects panel to add another body"
            )
        if self.rig_file:
            self.rig_path = Path(bpy_path_abs(self.rig_file))
            return
        if self.kind == "smplx":
            self.model_file = str(smplx_model_file(self.settings, self.gender))
        stat_key = ""
        if self.model_file:
            stat = Path(self.model_file).stat()
            stat_key = f"{self.model_file}:{stat.st_size}:{stat.st_mtime_ns}"
        digest = hashlib.sha256(f"{self.kind}|{stat_key}".encode()).hexdigest()[:16]
        folder = self.settings.work_dir() / "rigs"
        folder.mkdir(exist_ok=True)
        self.rig_path = folder / f"rig-{self.kind}-{digest}.npz"

    def scene_full(self) -> bool:
        import bpy

        prose = bpy.context.scene.prose
        return prose.person_1 is not None and prose.person_2 is not None

    def commands(self):
        if self.rig_file:
            return []
        if self.rig_path.is_file():
            try:
                self.rig = load_rig(self.rig_path)
                return []
            except ProseError:
                # Half written by an older version, or damaged: built again below.
                self.rig_path.unlink(missing_ok=True)
        self.partial_path = self.rig_path.with_name(
            f"{self.rig_path.stem}.partial-{os.getpid()}-{next(_partial_counter)}.npz"
        )
        argv = ["rig", "--body", self.kind, "--out", str(self.partial_path)]
        if self.model_file:
            argv += ["--model-file", self.model_file]
        return [self.engine_argv(*argv)]

    # -- what the user sees while the engine works
    def _launch(self):
        self.started_at = time.monotonic()
        body = BODY_NAMES.get(self.kind, self.kind)
        self._engine_message = (
            f"the engine is building the {body} body (the first time on a machine it prepares "
            "the body data, which can take a minute or more)"
        )
        self._refresh_status()
        super()._launch()

    def on_event(self, event):
        if event.get("event") != "progress":
            return
        message = str(event.get("message") or event.get("step") or "").strip()
        if message:
            self._engine_message = message[:200]
        try:
            done, total = float(event["done"]), float(event["total"])
        except (KeyError, TypeError, ValueError):
            return
        if total > 0:
            self.progress = min(0.99, max(self.progress, done / total))

    def elapsed_s(self) -> float:
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at

    def _refresh_status(self) -> None:
        self.status_text = f"{self.title}: {self._engine_message} - {self.elapsed_s():.0f} s"

    def poll(self):
        state = super().poll()
        if state is TaskState.RUNNING:
            self._refresh_status()
        return state

    def status_line(self) -> str:
        # No percentage until the engine gives one: a bar stuck at 0% looks like a hang.
        return f"{self.status_text} ({self.progress:.0%})" if self.progress > 0 else self.status_text

    # -- the rig file
    def _discard_partial(self) -> None:
        if self.partial_path is not None:
            self.partial_path.unlink(missing_ok=True)
            self.partial_path = None

    def cancel(self):
        super().cancel()
        self._discard_partial()

    def _fail(self, text):
        super()._fail(text)
        self._discard_partial()

    def _read_rig(self) -> Rig:
        """The rig the engine just wrote (kept as the cached rig), the cached one, or the given file."""
        if self.partial_path is None:
            return self.rig if self.rig is not None else load_rig(self.rig_path)
        try:
            rig = load_rig(self.partial_path)
        except ProseError:
            self._discard_partial()
            raise
        try:
            os.replace(self.partial_path, self.rig_path)
        except OSError:
            self.partial_path.unlink(missing_ok=True)  # not cached: built again next time
        self.partial_path = None
        return rig

    def collect(self):
        self.rig = self._read_rig()
        if self.rig.kind != self.kind and not self.rig_file:
            raise ProseError(f"The rig file {self.rig_path} is for {self.rig.kind}, not {self.kind}")

    def apply(self, context):
        collection = context.collection or context.scene.collection
        self.built = build_body(self.rig, self.name, collection, self.model_file)
        prose = context.scene.prose
        # On the floor; Person 2 a step in front of Person 1, facing it.
        place_new_body(self.built, prose.person_1 if prose.person_2 is None else None)
        if prose.person_1 is None:
            prose.person_1 = self.built.armature
        elif prose.person_2 is None:
            prose.person_2 = self.built.armature
        for obj in context.view_layer.objects:
            obj.select_set(False)
        self.built.armature.select_set(True)
        context.view_layer.objects.active = self.built.armature
        self.messages.append(Message("INFO", f"Added {self.rig.kind} body {self.built.armature.name}"))


class AdoptSmplxAddonTask(AddBodyTask):
    """Use a body of the official SMPL-X add-on as a subject: the SMPL-X rig of the user's model
    file (for its regions), then the add-on's armature and mesh are marked as they are."""

    title = "Use SMPL-X add-on body"

    def __init__(self, settings: EngineSettings, armature, gender: str = "NEUTRAL", rig_file: str = "", person: int = 0):
        super().__init__(settings, "smplx", gender, rig_file, armature.name if armature is not None else "")
        self.armature_name = armature.name if armature is not None else ""
        self.person = person
        self.model_file_explicit = ""

    def scene_full(self) -> bool:
        import bpy

        prose = bpy.context.scene.prose
        if self.person:
            return False
        return (prose.person_1 is not None and prose.person_1.name != self.armature_name
                and prose.person_2 is not None and prose.person_2.name != self.armature_name)

    def prepare(self):
        import bpy

        from .smplx_addon import addon_mesh, is_addon_armature, model_gender

        armature = bpy.data.objects.get(self.armature_name)
        if armature is None or not is_addon_armature(armature):
            raise ProseError(
                "Select a body made by the SMPL-X add-on (its armature or mesh): an armature with a "
                "'root' bone above 'pelvis' and the 55 SMPL-X joints"
            )
        if addon_mesh(armature) is None:
            raise ProseError(f"{armature.name} deforms no mesh: the SMPL-X add-on's body has one")
        self.gender = model_gender(armature, addon_mesh(armature)) or self.gender
        super().prepare()
        if self.rig_file:
            self.model_file = str(smplx_model_file(self.settings, self.gender))

    def collect(self):
        self.rig = self._read_rig()
        if self.rig.kind != "smplx":
            raise ProseError(f"The rig file {self.rig_path} is for {self.rig.kind}, not SMPL-X")

    def apply(self, context):
        import bpy

        from .smplx_addon import adopt

        armature = bpy.data.objects[self.armature_name]
        adopt(armature, self.model_file, self.rig)
        prose = context.scene.prose
        if self.person == 2 or (not self.person and prose.person_1 is not None and prose.person_1 != armature):
            if prose.person_1 == armature:
                prose.person_1 = None
            prose.person_2 = armature
        else:
            if prose.person_2 == armature:
                prose.person_2 = None
            prose.person_1 = armature
        self.messages.append(Message("INFO", f"{armature.name} (SMPL-X add-on body, {self.gender.lower()} model) is a subject now"))
