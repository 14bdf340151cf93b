"""Refine: the scene -> a job file, ``python -m engine refine``, the result file -> keyframes
in a new action on a new NLA track per moved person, and per-contact distances."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import bpy

from .contacts import empty_backoff
from .distances import ContactMeasure, contact_distances, contact_labels, contact_measures
from .intervals import interval_of
from .layers import original_poses, write_refinement
from .poses import BonePose, EnginePose, bone_pose_from_engine, read_engine_pose
from .settings import EngineSettings, ProseError
from .subjects import Subject, scene_subjects
from .tasks import EngineTask, Message, read_json, unique_stem

JOB_SCHEMA_VERSION = 1
RESULT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RefineRequest:
    """What the Refine operator asks for (built from the scene's properties)."""

    frames: tuple[int, ...]
    contact_strength: float = 1.0
    stay_close_strength: float = 1.0
    iterations: int = 1000
    ease_frames: int = 0


def _model_path(subject: Subject, settings: EngineSettings) -> str | None:
    if subject.info.kind == "anny":
        return None
    if subject.info.model_file:
        return subject.info.model_file
    raise ProseError(f"{subject.armature.name} is an SMPL-X body without a model file: set the SMPL-X model folder and add the body again")


def build_job(scene: bpy.types.Scene, request: RefineRequest, settings: EngineSettings, measured: list | None = None) -> dict:
    """The job dictionary (schemas/job.schema.json) for the scene's subjects at ``frames``.
    Reads the original poses (never an earlier refinement: the refinement layers are muted)
    by stepping the scene's frame and restores the frame afterwards."""
    subjects = scene_subjects(scene)
    if not subjects:
        raise ProseError("No subjects: add a body (Subjects panel) and pick it as Person 1")
    kinds = {s.info.kind for s in subjects}
    if len(kinds) > 1:
        raise ProseError("Both people must use the same body model (Anny or SMPL-X)")
    if not any(s.movable for s in subjects):
        raise ProseError("Nobody may move: tick 'Move' for at least one person")
    prose = scene.prose
    # A range is one clip, solved together (issue 20); one frame keeps the single-frame path.
    sequence = len(request.frames) > 1
    constraints = _constraints(prose, len(subjects), request.contact_strength, sequence)

    original_frame = scene.frame_current
    frames = []
    try:
        with original_poses([s.armature for s in subjects]):
            frames = _read_frames(scene, request, subjects, measured)
    finally:
        scene.frame_set(original_frame)
    return _job(subjects, request, frames, constraints, prose, settings)


def _read_frames(scene, request: RefineRequest, subjects: list[Subject], measured: list | None = None) -> list[dict]:
    """The job's frames; ``measured`` (when given) receives each frame's contact distances
    (ground contacts: the region's lowest z, the floor is subtracted later)."""
    frames = []
    for frame in request.frames:
        scene.frame_set(frame)
        people = []
        for subject in subjects:
            pose = read_engine_pose(subject.armature, subject.info)
            people.append({
                "shape": list(subject.info.shape),
                "rotations": {name: list(q) for name, q in pose.rotations.items()},
                "root_translation": list(pose.root_translation),
            })
        frames.append({"frame": int(frame), "people": people})
        if measured is not None:
            measured.append(contact_distances(scene, subjects, 0.0))
    return frames


def _job(subjects, request, frames, constraints, prose, settings) -> dict:
    options = {
        "iterations": [request.iterations, request.iterations],
        "progress_every": 10,
        "floor_height": floor_height(prose),
        # Blender's mesh and bones are built for each subject's shape, and a joint's rest
        # frame (which the rotations refer to) moves with the shape.
        "optimize_shape": False,
    }
    if len(frames) > 1:
        # Every frame of the range in one solve: contact held, the correction smooth.
        options["solve"] = "sequence"
        options["sequence_iterations"] = int(request.iterations)
    people_settings = []
    for subject in subjects:
        entry = {"name": subject.armature.name, "movable": subject.movable, "pinned_joints": []}
        if not math.isclose(request.stay_close_strength, 1.0):
            names = list(subject.info.joint_names) + ["root_translation", "global_orientation"]
            entry["joint_weights"] = {name: float(request.stay_close_strength) for name in names}
        people_settings.append(entry)
    return {
        "schema_version": JOB_SCHEMA_VERSION,
        "body": {"kind": subjects[0].info.kind, "model_path": _model_path(subjects[0], settings)},
        "people": people_settings,
        "frames": frames,
        "constraints": constraints,
        "options": options,
    }


def _constraints(prose, people: int, strength: float, sequence: bool = False) -> dict:
    try:
        samples = json.loads(prose.lmm_samples_json or "[]")
    except ValueError:
        samples = []
    disabled = [c.key for c in prose.contacts if c.source == "LMM" and not c.enabled and c.key]
    explicit = []
    for contact in prose.contacts:
        if contact.source != "ARTIST" or not contact.enabled:
            continue
        if max(contact.person_a, contact.person_b) > people:
            raise ProseError(f"The contact {contact.part_a} - {contact.part_b} names Person 2, but only one subject is set")
        entry = {
            "person_a": contact.person_a - 1,
            "region_a": contact.part_a,
            "person_b": contact.person_b - 1,
            "region_b": contact.part_b,
            "weight": float(contact.weight * strength),
        }
        # Intervals mean something only in a clip: a single frame refines every contact.
        interval = interval_of(contact) if sequence else None
        if interval is not None:
            entry["interval"] = interval
        explicit.append(entry)
    lmm_enabled = any(c.source == "LMM" and c.enabled for c in prose.contacts)
    if not explicit and not lmm_enabled:
        raise ProseError("No enabled contacts: run Find contacts or add a contact by hand")
    out = {
        "lmm_samples": samples if lmm_enabled else [],
        "disabled": disabled,
        "empty_backoff": empty_backoff(prose),
        "lmm_weight": float(strength),
        "explicit": explicit,
    }
    # The engine has one interval for the language model's contacts (they describe one
    # moment): the first enabled one that has an interval gives it.
    lmm_interval = next(
        (interval_of(c) for c in prose.contacts if c.source == "LMM" and c.enabled and c.use_interval), None
    ) if sequence else None
    if lmm_interval is not None and lmm_enabled:
        out["lmm_interval"] = lmm_interval
    return out


def floor_height(prose) -> float | None:
    """The job's ``options.floor_height``: None lets the engine put the floor where the
    bodies stand (their lowest foot point at the first refined frame); a height is world Z,
    which is the engine's frame."""
    return float(prose.floor_height) if prose.floor_mode == "HEIGHT" else None


@dataclass(frozen=True)
class RefinedFrame:
    frame: int
    poses: tuple[EnginePose, ...]
    constraints: tuple[dict, ...]
    warnings: tuple[str, ...]


def parse_result(data: dict, subjects: list[Subject], frames: tuple[int, ...]) -> tuple[list[RefinedFrame], list[str]]:
    """Check a result dictionary against the job's subjects; any mismatch is a ProseError."""
    def bad(why: str) -> ProseError:
        return ProseError(f"The engine's result file is unusable ({why}); nothing was changed. Run Refine again")

    if data.get("schema_version") != RESULT_SCHEMA_VERSION:
        raise bad(f"schema_version {data.get('schema_version')!r}, expected {RESULT_SCHEMA_VERSION}")
    raw_frames = data.get("frames")
    if not isinstance(raw_frames, list) or [f.get("frame") if isinstance(f, dict) else None for f in raw_frames] != list(frames):
        raise bad("its frames differ from the job's")
    parsed = []
    shape_warnings: list[str] = []
    for raw in raw_frames:
        people = raw.get("people")
        if not isinstance(people, list) or len(people) != len(subjects):
            raise bad("wrong number of people")
        poses = []
        for subject, person in zip(subjects, people):
            rotations = person.get("rotations") if isinstance(person, dict) else None
            translation = person.get("root_translation") if isinstance(person, dict) else None
            if not isinstance(rotations, dict) or not isinstance(translation, list) or len(translation) != 3:
                raise bad("a pose lacks rotations or root_translation")
            known = set(subject.info.joint_names)
            clean = {}
            for name, quaternion in rotations.items():
                if name not in known:
                    raise bad(f"unknown joint {name!r}")
                if not (isinstance(quaternion, list) and len(quaternion) == 4 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in quaternion)):
                    raise bad(f"joint {name!r} has no valid quaternion")
                norm = math.sqrt(sum(v * v for v in quaternion))
                if norm < 1e-6:
                    raise bad(f"joint {name!r} has a zero quaternion")
                clean[name] = tuple(v / norm for v in quaternion)
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in translation):
                raise bad("root_translation is not finite")
            poses.append(EnginePose(clean, tuple(float(v) for v in translation)))
            shape = person.get("shape", [])
            if subject.movable and shape and len(shape) == len(subject.info.shape) and max(abs(a - b) for a, b in zip(shape, subject.info.shape)) > 1e-3:
                shape_warnings.append(
                    f"The engine changed {subject.armature.name}'s body shape; the Blender mesh keeps its shape, "
                    "so contacts may be off by a little"
                )
        constraints = raw.get("constraints", [])
        if not isinstance(constraints, list) or not all(isinstance(c, dict) for c in constraints):
            raise bad("constraints must be a list of objects")
        warnings = tuple(str(w) for w in raw.get("warnings", []))
        if raw.get("backed_off"):
            warnings += ("Too many language-model samples were empty: the language-model contacts were not used",)
        parsed.append(RefinedFrame(int(raw["frame"]), tuple(poses), tuple(constraints), warnings))
    return parsed, [str(w) for w in data.get("warnings", [])] + sorted(set(shape_warnings))


class RefineTask(EngineTask):
    title = "Refine"

    def __init__(self, settings: EngineSettings, scene: bpy.types.Scene, request: RefineRequest):
        super().__init__(settings)
        self.scene = scene
        self.request = request
        self.subjects: list[Subject] = []
        self.refined: list[RefinedFrame] = []
        self.warnings: list[str] = []
        self.before: list[list[float | None]] = []
        self.floor_used: float | None = None

    def prepare(self):
        self.settings.interpreter()
        self.subjects = scene_subjects(self.scene)
        self.labels = contact_labels(self.scene)
        self.before = []
        job = build_job(self.scene, self.request, self.settings, self.before)
        self.floor_used = job["options"]["floor_height"]
        stem = unique_stem("refine")
        folder = self.settings.work_dir()
        self.job_path = folder / f"{stem}-job.json"
        self.result_path = folder / f"{stem}-result.json"
        self.job_path.write_text(json.dumps(job, indent=1), encoding="utf-8")

    def commands(self):
        return [self.engine_argv("refine", str(self.job_path), "-o", str(self.result_path))]

    def on_event(self, event):
        if event.get("event") == "progress":
            stage = int(event.get("stage", 1))
            total = max(1, int(event.get("total", 1)))
            iteration = int(event.get("iteration", 0))
            frame_share = 1.0 / max(1, len(self.request.frames))
            done_frames = getattr(self, "_frame_index", 0)
            within = ((stage - 1) + min(1.0, iteration / total)) / 2.0
            self.progress = min(0.99, (done_frames + within) * frame_share)
            self.status_text = f"Refine: frame {event.get('frame', '')} stage {stage} iteration {iteration}/{total}"
        elif event.get("event") == "frame":
            self._frame_index = int(event.get("index", 0))

    def collect(self):
        data = read_json(self.result_path, "result file")
        self.refined, self.warnings = parse_result(data, self.subjects, self.request.frames)
        floor = data.get("floor_height")
        if self.floor_used is None and isinstance(floor, (int, float)) and math.isfinite(floor):
            self.floor_used = float(floor)

    def apply(self, context):
        scene = self.scene
        prose = scene.prose
        frames = [r.frame for r in self.refined]
        # Everything is checked; from here on only writes.
        for subject in self.subjects:
            if not subject.movable:
                continue
            bone_poses: list[BonePose] = self._bone_poses(subject)
            write_refinement(scene, subject.armature, frames, bone_poses, self.request.ease_frames, prose.refinement_influence)
        after = self._measure_after(frames)
        self._fill_results(after)
        warnings = self.warnings + [w for r in self.refined for w in r.warnings]
        summary = f"Refined {len(self.refined)} frame(s) of {sum(s.movable for s in self.subjects)} person(s)"
        prose.result_summary = summary
        for warning in warnings:
            self.messages.append(Message("WARNING", warning))
        self.messages.append(Message("INFO", summary + "; the result is on the track 'ProsePose refinement' (Remove refinement undoes it)"))

    def _bone_poses(self, subject: Subject) -> list[BonePose]:
        """The refined poses as the subject's bone values. An SMPL-X add-on body's placement
        (its ``root`` bone, keyed for AMASS clips) is read at each refined frame."""
        if subject.info.convention == "prosepose":
            return [bone_pose_from_engine(subject.armature, subject.info, r.poses[subject.index]) for r in self.refined]
        scene = self.scene
        current = scene.frame_current
        try:
            out = []
            for r in self.refined:
                scene.frame_set(r.frame)
                out.append(bone_pose_from_engine(subject.armature, subject.info, r.poses[subject.index]))
            return out
        finally:
            scene.frame_set(current)

    def _measure_after(self, frames: list[int]) -> list[list[ContactMeasure | None]]:
        scene = self.scene
        current = scene.frame_current
        out = []
        try:
            for frame in frames:
                scene.frame_set(frame)
                out.append(contact_measures(scene, self.subjects, 0.0))
        finally:
            scene.frame_set(current)
        return out

    def _fill_results(self, after: list[list[ContactMeasure | None]]) -> None:
        """One row per contact of the list (before -> after; for a range its worst frame and
        how many frames are within 1 cm), and the engine's terms per frame as details."""
        prose = self.scene.prose
        floor = self.floor_used
        results = prose.results
        results.clear()
        for index, (label, source) in enumerate(self.labels):
            ground = label.endswith(" - ground")
            rows = []
            for number, (b, measure) in enumerate(zip(self.before, after)):
                b, measure = b[index], measure[index]
                if b is None or measure is None or (ground and floor is None):
                    continue
                a = measure.distance
                if ground:
                    b, a = b - floor, a - floor
                rows.append((self.refined[number].frame, b, a, measure.nearest))
            row = results.add()
            row.label, row.source = label, source.lower()
            row.frame_count = len(self.refined)
            row.measured = bool(rows)
            if rows:
                frame, b, a, nearest = max(rows, key=lambda r: abs(r[2]))
                row.frame, row.before, row.after, row.nearest = frame, b, a, nearest
                row.within = sum(1 for r in rows if abs(r[2]) <= 0.01)
        details = prose.result_details
        details.clear()
        for refined in self.refined:
            for constraint in refined.constraints:
                row = details.add()
                row.frame = refined.frame
                row.label = str(constraint.get("label", ""))
                row.source = str(constraint.get("source", ""))
                row.before = float(constraint.get("before_m", 0.0))
                row.after = float(constraint.get("after_m", 0.0))
