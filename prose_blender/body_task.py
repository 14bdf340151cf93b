"""Add body: get the rig description (``python -m engine rig``, cached per body model file) and
build the armature and mesh from it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .bodies import build_body, place_new_body
from .rig import Rig, load_rig
from .settings import EngineSettings, ProseError, bpy_path_abs, smplx_model_file
from .tasks import EngineTask, Message


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
        if self.rig_file or self.rig_path.is_file():
            return []
        argv = ["rig", "--body", self.kind, "--out", str(self.rig_path)]
        if self.model_file:
            argv += ["--model-file", self.model_file]
        return [self.engine_argv(*argv)]

    def collect(self):
        self.rig = load_rig(self.rig_path)
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
