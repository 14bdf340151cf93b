"""AMASS / SMPL-X ``.npz`` motion: import onto a body as an action, export a subject's pose
as an AMASS-style file. An SMPL-X joint rotation is an axis-angle in the model frame's axes;
the add-on's local rotation is the same rotation seen from the joint's rest frame:
``local = R0^T @ R @ R0`` with ``R0`` the bone's rest rotation (armature space = model frame)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Quaternion, Vector

from . import retarget
from .bodies import body_info
from .keyframes import assign_action, new_pose_action
from .poses import EnginePose, bone_pose_from_engine, read_engine_pose
from .settings import EngineSettings, ProseError, smplx_model_file


@dataclass(frozen=True)
class MotionClip:
    """poses: (T, 3K) axis-angle per joint; trans: (T, 3); betas: (B,)."""

    poses: np.ndarray
    trans: np.ndarray
    betas: np.ndarray
    gender: str
    frame_rate: float


def load_clip(path: str | Path) -> MotionClip:
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            if "poses" not in keys:
                raise ProseError(f"{path} has no 'poses' array: is it an AMASS / SMPL-X motion file?")
            poses = np.asarray(data["poses"], dtype=np.float64)
            trans = np.asarray(data["trans"], dtype=np.float64) if "trans" in keys else np.zeros((len(poses), 3))
            betas = np.asarray(data["betas"], dtype=np.float64).ravel() if "betas" in keys else np.zeros(0)
            gender = str(data["gender"]) if "gender" in keys else "neutral"
            rate_key = next((k for k in ("mocap_framerate", "mocap_frame_rate", "fps") if k in keys), None)
            frame_rate = float(data[rate_key]) if rate_key else 30.0
    except (OSError, ValueError) as error:
        raise ProseError(f"Cannot read the motion file {path}: {error}") from error
    if poses.ndim != 2 or poses.shape[1] % 3 or trans.shape != (len(poses), 3):
        raise ProseError(f"{path}: poses must be (T, 3K) and trans (T, 3)")
    return MotionClip(poses, trans, betas, gender, frame_rate)


def _axis_angle_to_quaternion(vector) -> Quaternion:
    vector = Vector(vector)
    angle = vector.length
    return Quaternion(vector.normalized(), angle) if angle > 1e-12 else Quaternion()


def _resampled(clip: MotionClip, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """The clip at ``rate`` frames per second: (T', 3K) axis-angles and (T', 3) translations,
    rotations interpolated on the sphere, translations linearly, over the clip's duration."""
    if abs(rate - clip.frame_rate) < 1e-6 or len(clip.poses) < 2:
        return clip.poses, clip.trans
    count = int(np.floor((len(clip.poses) - 1) * rate / clip.frame_rate + 1e-9)) + 1
    joints = clip.poses.shape[1] // 3
    poses = np.zeros((count, clip.poses.shape[1]))
    trans = np.zeros((count, 3))
    for k in range(count):
        position = k * clip.frame_rate / rate
        low = min(int(np.floor(position)), len(clip.poses) - 1)
        high = min(low + 1, len(clip.poses) - 1)
        t = position - low
        trans[k] = (1 - t) * clip.trans[low] + t * clip.trans[high]
        for j in range(joints):
            a = _axis_angle_to_quaternion(clip.poses[low, 3 * j: 3 * j + 3])
            b = _axis_angle_to_quaternion(clip.poses[high, 3 * j: 3 * j + 3])
            axis, angle = a.slerp(b, t).to_axis_angle()
            poses[k, 3 * j: 3 * j + 3] = np.asarray(axis) * angle
    return poses, trans


def smplx_rest_joints(settings: EngineSettings | None, gender: str = "neutral", betas=None) -> tuple[np.ndarray | None, str]:
    """(55, 3) rest joints of the user's SMPL-X model file (the preferences' folder, the
    ``gender``'s file or else the neutral one) shaped by ``betas`` (``J_regressor @ (v_template
    + shapedirs @ betas)``, SMPL-X's frame), and a phrase saying which skeleton that is; (None,
    phrase) when no model file is set or it cannot be read here (a ``.pkl``: only ``.npz`` files
    are read on Blender's side, without pickles), and the retarget uses its canonical skeleton.
    ``settings`` None: the add-on's preferences."""
    canonical = "canonical SMPL-X skeleton"
    if settings is None:
        from .preferences import engine_settings

        settings = engine_settings()
    if not settings.smplx_model_folder:
        return None, canonical
    path = None
    for name in dict.fromkeys((str(gender or "neutral").upper(), "NEUTRAL")):
        try:
            path = smplx_model_file(settings, name)
            break
        except ProseError:
            continue
    if path is None:
        return None, f"{canonical}: no SMPL-X model file for it in the preferences' folder"
    if path.suffix.lower() != ".npz":
        return None, f"{canonical}: {path.name} is not an .npz (use the .npz download for exact rest joints)"
    try:
        with np.load(path, allow_pickle=False) as data:
            template = np.asarray(data["v_template"], dtype=np.float64)
            regressor = np.asarray(data["J_regressor"], dtype=np.float64)
            shapedirs = np.asarray(data["shapedirs"], dtype=np.float64) if "shapedirs" in data.files else None
    except (OSError, KeyError, ValueError) as error:
        return None, f"{canonical}: {path.name} could not be read ({error})"
    betas = np.zeros(0) if betas is None else np.asarray(betas, dtype=np.float64).ravel()
    if shapedirs is not None and betas.size:
        n = min(betas.size, shapedirs.shape[-1])
        template = template + shapedirs[..., :n] @ betas[:n]
    joints = regressor @ template
    if joints.shape[0] < 55 or joints.shape[1] != 3:
        return None, f"{canonical}: {path.name} does not regress SMPL-X's 55 joints"
    return joints[:55], f"rest joints of {path.name}"


def import_clip(scene: bpy.types.Scene, armature: bpy.types.Object, clip: MotionClip, start_frame: int, frame_rate: str = "RESAMPLE", settings: EngineSettings | None = None) -> tuple[bpy.types.Action, list[str]]:
    """Key the clip on ``armature`` as its active action, one key per scene frame; returns
    (action, messages). A clip at another rate than the scene's is resampled to the scene's
    rate (``frame_rate="RESAMPLE"``) or sets the scene's rate (``"SCENE"``); a message says
    which. An SMPL-X clip on Anny is retargeted, on the exact rest joints of the user's SMPL-X
    model file (``settings``' folder, by default the preferences'; the clip's gender and betas) when one is
    set."""
    info = body_info(armature)
    warnings = []
    count = min(clip.poses.shape[1] // 3, len(info.joint_names))
    retarget = info.kind == "anny" and clip.poses.shape[1] // 3 >= 22
    rest_joints = None
    if retarget:
        rest_joints, skeleton = smplx_rest_joints(settings, clip.gender, clip.betas)
        warnings.append(
            f"The clip's SMPL-X joints ({clip.poses.shape[1] // 3}) were retargeted onto {armature.name}'s "
            f"bones by anatomy ({skeleton}; translation scaled by the pelvis heights)"
        )
    elif clip.poses.shape[1] // 3 != len(info.joint_names):
        warnings.append(f"The clip has {clip.poses.shape[1] // 3} joints, the body {len(info.joint_names)}: the first {count} were used")
    if not retarget and clip.betas.size and info.shape and not np.allclose(clip.betas[: len(info.shape)], np.asarray(info.shape)[: clip.betas.size], atol=1e-4):
        warnings.append("The clip's betas differ from the body's shape: add the body with the clip's shape for an exact fit")
    scene_rate = scene.render.fps / scene.render.fps_base
    clip_poses, clip_trans = clip.poses, clip.trans
    if abs(scene_rate - clip.frame_rate) > 1e-6:
        if frame_rate == "SCENE":
            fps = max(1, int(round(clip.frame_rate)))
            scene.render.fps, scene.render.fps_base = fps, fps / clip.frame_rate
            warnings.append(f"The scene's frame rate was set to the clip's, {clip.frame_rate:g} fps (it was {scene_rate:g} fps)")
        else:
            clip_poses, clip_trans = _resampled(clip, scene_rate)
            warnings.append(
                f"The clip ({clip.frame_rate:g} fps, {len(clip.poses)} frames) was resampled to the scene's "
                f"{scene_rate:g} fps ({len(clip_poses)} frames)"
            )
    if retarget:
        engine_poses = _retargeted(armature, info, clip_poses, clip_trans, rest_joints)
        bone_poses = [bone_pose_from_engine(armature, info, p) for p in engine_poses]
        frames = [start_frame + t for t in range(len(bone_poses))]
        action, slot = new_pose_action(armature, frames, bone_poses, f"{armature.name}_clip")
        assign_action(armature, action, slot)
        return action, warnings
    rest = [armature.data.bones[info.bone(name)].matrix_local.to_quaternion() for name in info.joint_names[:count]]
    amass_frame = info.kind == "smplx"
    to_model, pelvis = _amass_frame(armature, info) if amass_frame else (None, None)
    frames, poses = [], []
    for t in range(len(clip_poses)):
        rotations = {}
        for j in range(count):
            rotation = _axis_angle_to_quaternion(clip_poses[t, 3 * j: 3 * j + 3])
            if amass_frame and j == 0:
                rotation = to_model @ rotation
            rotations[info.joint_names[j]] = tuple(rest[j].conjugated() @ rotation @ rest[j])
        translation = Vector(clip_trans[t])
        if amass_frame:  # AMASS: pelvis at J0 + trans in the Z-up clip frame
            translation = to_model.to_matrix() @ (translation + pelvis) - pelvis
        engine_pose = EnginePose(rotations, tuple(translation))
        poses.append(bone_pose_from_engine(armature, info, engine_pose))
        frames.append(start_frame + t)
    action, slot = new_pose_action(armature, frames, poses, f"{armature.name}_clip")
    assign_action(armature, action, slot)
    return action, warnings


def _amass_frame(armature, info) -> tuple[Quaternion, Vector]:
    """(rotation from AMASS's Z-up clip frame to the SMPL-X model frame, the pelvis rest joint
    in the model frame, metres): an AMASS clip's root orientation already stands the Y-up model
    up in a Z-up world, which the engine's ``model_to_world`` does for the SMPL-X body."""
    from .poses import _placement

    to_model = info.model_to_world.transposed().to_quaternion()
    return to_model, _placement(armature, info).rest_head.copy()


def target_skeleton(armature, info) -> retarget.TargetSkeleton:
    """The armature's skeleton (rest frames in its model frame) for :mod:`.retarget`."""
    names = tuple(info.joint_names)
    index = {name: i for i, name in enumerate(names)}
    bones = [armature.data.bones[info.bone(name)] for name in names]
    parents = tuple(index.get(b.parent.name, -1) if b.parent is not None else -1 for b in bones)
    rest = np.array([np.asarray(b.matrix_local) for b in bones], dtype=np.float64)
    return retarget.TargetSkeleton(names, parents, rest, retarget.anny_floor_z(rest, names))


def _retargeted(armature, info, poses: np.ndarray, trans: np.ndarray, rest_joints=None) -> list[EnginePose]:
    """SMPL-X clip poses as the armature's engine poses, through :class:`.retarget.Retarget`
    (SMPL-H and SMPL clips: their 22 body joints only; their hands are numbered otherwise)."""
    if poses.shape[1] != 165:
        poses = poses[:, :66]
    local, root = retarget.Retarget(target_skeleton(armature, info), rest_joints)(poses, trans)
    out = []
    for t in range(len(poses)):
        rotations = {name: tuple(Matrix(local[t, j].tolist()).to_quaternion()) for j, name in enumerate(info.joint_names)}
        out.append(EnginePose(rotations, tuple(float(v) for v in root[t])))
    return out


def _amass_arrays(poses: np.ndarray, trans: np.ndarray, betas, gender: str, rate: float) -> dict[str, np.ndarray]:
    arrays = {
        "poses": poses.astype(np.float32),
        "trans": trans.astype(np.float32),
        "betas": np.asarray(betas, dtype=np.float32),
        "gender": np.str_(gender),
        "mocap_frame_rate": np.float32(rate),
        "surface_model_type": np.str_("smplx"),
    }
    arrays.update(
        root_orient=arrays["poses"][:, :3], pose_body=arrays["poses"][:, 3:66],
        pose_jaw=arrays["poses"][:, 66:69], pose_eye=arrays["poses"][:, 69:75],
        pose_hand=arrays["poses"][:, 75:165],
    )
    return arrays


def _inverse_retargeted(armature, info, rotations: np.ndarray, trans: np.ndarray, rate: float, settings) -> tuple[dict[str, np.ndarray], str]:
    """An Anny animation as an AMASS-style SMPL-X file through :meth:`.retarget.Retarget.inverse`
    (neutral body, zero betas; exact rest joints of the user's model file when one is set), and
    the bone-direction error of the result against the Anny bones, as a message."""
    rest_joints, skeleton = smplx_rest_joints(settings, "neutral", None)
    mapper = retarget.Retarget(target_skeleton(armature, info), rest_joints)
    local = retarget.quaternion_to_matrix(rotations)
    poses, smplx_trans = mapper.inverse(local, trans)
    errors = retarget.inverse_bone_direction_errors(local, trans, mapper)
    arrays = _amass_arrays(poses, smplx_trans, np.zeros(10), "neutral", rate)
    arrays["retargeted_from"] = np.str_(info.kind)
    every = np.concatenate(list(errors.values()))
    groups = {}
    for bone, values in errors.items():
        groups.setdefault(bone.split(" ", 1)[-1], []).append(values)
    detail = ", ".join(f"{group} {np.max(np.concatenate(v)):.2f}" for group, v in groups.items())
    message = (
        f"{armature.name} exported as SMPL-X through the inverse retarget ({skeleton}): bone-direction "
        f"error median {np.median(every):.2f} deg, worst {every.max():.2f} deg over {len(rotations)} frame(s) "
        f"(worst per bone: {detail})"
    )
    return arrays, message


def export_clip(scene: bpy.types.Scene, armature: bpy.types.Object, frames: list[int], path: str | Path, contacts_path: str | Path | None, anny_as_smplx: bool = False, settings: EngineSettings | None = None) -> list[str]:
    """Write the subject's pose at ``frames`` and, when asked, the contacts used as JSON.

    An SMPL-X subject (ours or the SMPL-X add-on's) gives an AMASS-style file that the official
    add-on and AMASS tools read: ``poses`` (T, 165) with the root orientation in AMASS's Z-up
    frame, ``trans`` (pelvis = J0 + trans there), ``betas``, ``gender``, ``mocap_frame_rate``,
    ``surface_model_type = 'smplx'`` and the AMASS slices. An Anny subject gives Anny's own
    file: ``joint_names``, ``rotations`` (T, J, 4) quaternions (w, x, y, z) in each bone's rest
    frame, ``root_translation`` (T, 3) in Anny's (Z-up) model frame, ``shape`` with
    ``shape_names``-free phenotype values, ``frame_rate``, ``surface_model_type = 'anny'``;
    no AMASS names. With ``anny_as_smplx`` an Anny subject gives an AMASS-style SMPL-X file
    through the inverse retarget instead (``retargeted_from = 'anny'``), and the returned
    messages give its bone-direction error (also printed)."""
    info = body_info(armature)
    rotations = np.zeros((len(frames), len(info.joint_names), 4))
    trans = np.zeros((len(frames), 3))
    original = scene.frame_current
    try:
        for t, frame in enumerate(frames):
            scene.frame_set(frame)
            pose = read_engine_pose(armature, info)
            rotations[t] = [pose.rotations[name] for name in info.joint_names]
            trans[t] = pose.root_translation
    finally:
        scene.frame_set(original)
    rate = scene.render.fps / scene.render.fps_base
    messages = []
    if info.kind != "smplx" and anny_as_smplx:
        arrays, message = _inverse_retargeted(armature, info, rotations, trans, rate, settings)
        print(message)
        messages.append(message)
    elif info.kind != "smplx":
        arrays = {
            "surface_model_type": np.str_(info.kind),
            "joint_names": np.array(info.joint_names),
            "rotations": rotations.astype(np.float32),
            "root_translation": trans.astype(np.float32),
            "shape": np.asarray(info.shape, dtype=np.float32),
            "frame_rate": np.float32(rate),
        }
    else:
        to_model, pelvis = _amass_frame(armature, info)
        to_clip = to_model.conjugated()
        poses = np.zeros((len(frames), 3 * len(info.joint_names)))
        for t in range(len(frames)):
            for j in range(len(info.joint_names)):
                rotation = Quaternion(rotations[t, j])  # SMPL-X rest frames are unrotated
                if j == 0:
                    rotation = to_clip @ rotation
                axis, angle = rotation.to_axis_angle()
                poses[t, 3 * j: 3 * j + 3] = np.asarray(axis) * angle
            trans[t] = np.asarray(to_clip.to_matrix() @ (Vector(trans[t]) + pelvis) - pelvis)
        model = Path(info.model_file).stem.lower() if info.model_file else ""
        gender = next((g for g in ("female", "male", "neutral") if g in model), "neutral")
        arrays = _amass_arrays(poses, trans, info.shape, gender, rate)
    np.savez(path, **arrays)
    if contacts_path:
        prose = scene.prose
        contacts = []
        for c in prose.contacts:
            if not c.enabled:
                continue
            entry = {"source": c.source.lower(), "person_a": c.person_a, "part_a": c.part_a, "person_b": c.person_b, "part_b": c.part_b}
            if c.source == "LMM":
                # Refine weighs language-model contacts by the samples naming them and the
                # contact strength; a row has no weight of its own.
                entry.update(samples=c.count, key=c.key)
            else:
                entry["weight"] = c.weight
            contacts.append(entry)
        Path(contacts_path).write_text(json.dumps({"frames": list(frames), "contact_strength": prose.contact_strength, "contacts": contacts}, indent=1), encoding="utf-8")
    return messages
