"""The refinement layer of a subject: one NLA track, "ProsePose refinement", above the
original animation, which is never modified.

* A refinement always starts from the original: :func:`original_poses` mutes the layer while
  the job's poses (and the distances before) are read.
* A re-run over frames that were refined before replaces the earlier result there; frames
  refined earlier and not now keep their result.
* One strip per run of refined frames, covering exactly those frames plus ``ease`` frames on
  each side. In the ease frames the key is the original pose carrying the nearest refined
  frame's correction, and the strip's influence ramps from 0 (on the outermost ease frame,
  which is therefore untouched) to the layer's influence: the correction fades into the
  untouched animation. Two runs whose ease frames would overlap become one strip; the frames
  between them carry a correction interpolated between the two.
* The layer's influence (a slider in the Refine panel) scales every strip: 0 shows the
  original, 1 the refinement (A/B).
* :func:`remove_refinement` deletes the layer and everything the first refinement added (a
  base pose for channels the original does not animate, the original action pushed onto a
  track, the animation data itself) and restores the scene exactly as it was.

Bookkeeping lives in a custom property of the armature (removed with the layer) and of the
layer's actions."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import bpy
from mathutils import Quaternion, Vector

from .keyframes import has_slotted_actions, new_pose_action
from .poses import BonePose

TRACK_NAME = "ProsePose refinement"
BASE_TRACK_NAME = "ProsePose base pose"
PROP_LAYER = "prosepose_layer"  # on the armature: what the first refinement added
PROP_STRIP = "prosepose_strip"  # on each layer action: its refined frames and ease


@dataclass(frozen=True)
class Segment:
    first: int  # first refined frame
    last: int  # last refined frame
    refined: tuple[int, ...]


def refinement_track(armature: bpy.types.Object):
    animation = armature.animation_data
    if animation is None or armature.get(PROP_LAYER) is None:
        return None
    return next((t for t in animation.nla_tracks if t.name == TRACK_NAME), None)


def refined_frames(armature: bpy.types.Object) -> list[int]:
    track = refinement_track(armature)
    if track is None:
        return []
    frames: set[int] = set()
    for strip in track.strips:
        if strip.action is not None and strip.action.get(PROP_STRIP) is not None:
            frames.update(int(f) for f in strip.action[PROP_STRIP]["frames"])
    return sorted(frames)


@contextlib.contextmanager
def original_poses(armatures):
    """Within the block the scene evaluates to the original animation (the refinement layers
    are muted); the mute state and the frame are restored afterwards."""
    muted = []
    for armature in armatures:
        track = refinement_track(armature)
        if track is not None and not track.mute:
            track.mute = True
            muted.append(track)
    try:
        yield
    finally:
        for track in muted:
            track.mute = False


def _channels(armature, pose: BonePose) -> list[tuple[str, int]]:
    out = []
    for bone in pose.rotations:
        path = f'pose.bones["{bpy.utils.escape_identifier(bone)}"].rotation_quaternion'
        out += [(path, i) for i in range(4)]
    path = f'pose.bones["{bpy.utils.escape_identifier(pose.root_bone)}"].location'
    return out + [(path, i) for i in range(3)]


def _action_curves(action):
    if has_slotted_actions():
        for layer in action.layers:
            for strip in layer.strips:
                for bag in strip.channelbags:
                    yield from bag.fcurves
    else:
        yield from action.fcurves


def _keep_only(action, channels: set[tuple[str, int]]) -> None:
    """Delete the action's curves of other channels."""
    if has_slotted_actions():
        for layer in action.layers:
            for strip in layer.strips:
                for bag in strip.channelbags:
                    for curve in [c for c in bag.fcurves if (c.data_path, c.array_index) not in channels]:
                        bag.fcurves.remove(curve)
    else:
        for curve in [c for c in action.fcurves if (c.data_path, c.array_index) not in channels]:
            action.fcurves.remove(curve)


def _animated_channels(animation) -> set[tuple[str, int]]:
    actions = [animation.action] if animation.action is not None else []
    for track in animation.nla_tracks:
        actions += [s.action for s in track.strips if s.action is not None]
    return {(c.data_path, c.array_index) for a in actions for c in _action_curves(a)}


def _read_bone_pose(armature, template: BonePose) -> BonePose:
    bones = armature.pose.bones
    rotations = {name: bones[name].rotation_quaternion.normalized() for name in template.rotations}
    return BonePose(rotations, template.root_bone, bones[template.root_bone].location.copy())


def _pose_from_action(action, template: BonePose, frame: int) -> BonePose:
    curves = {(c.data_path, c.array_index): c for c in _action_curves(action)}
    rotations = {}
    for name in template.rotations:
        path = f'pose.bones["{bpy.utils.escape_identifier(name)}"].rotation_quaternion'
        rotations[name] = Quaternion([curves[(path, i)].evaluate(frame) for i in range(4)]).normalized()
    path = f'pose.bones["{bpy.utils.escape_identifier(template.root_bone)}"].location'
    return BonePose(rotations, template.root_bone, Vector([curves[(path, i)].evaluate(frame) for i in range(3)]))


def _aligned(pose: BonePose, reference: BonePose) -> BonePose:
    """``pose`` with each quaternion on the same hemisphere as ``reference``'s (a blend of q
    and -q would pass through zero)."""
    rotations = {n: (-q if q.dot(reference.rotations[n]) < 0 else q) for n, q in pose.rotations.items()}
    return BonePose(rotations, pose.root_bone, pose.root_location)


def _correction(original: BonePose, refined: BonePose) -> BonePose:
    rotations = {}
    for name, q in refined.rotations.items():
        delta = original.rotations[name].inverted() @ q
        rotations[name] = -delta if delta.w < 0 else delta
    return BonePose(rotations, refined.root_bone, refined.root_location - original.root_location)


def _corrected(original: BonePose, correction: BonePose) -> BonePose:
    rotations = {n: original.rotations[n] @ d for n, d in correction.rotations.items()}
    return BonePose(rotations, original.root_bone, original.root_location + correction.root_location)


def _mix(a: BonePose, b: BonePose, t: float) -> BonePose:
    rotations = {n: a.rotations[n].slerp(b.rotations[n], t) for n in a.rotations}
    return BonePose(rotations, a.root_bone, a.root_location.lerp(b.root_location, t))


def segments(frames, ease: int) -> list[Segment]:
    """Runs of refined frames; runs whose ease frames would overlap are one segment."""
    ordered = sorted(set(int(f) for f in frames))
    out: list[list[int]] = []
    for frame in ordered:
        if out and frame - out[-1][-1] <= max(2 * ease, 1):
            out[-1].append(frame)
        else:
            out.append([frame])
    return [Segment(run[0], run[-1], tuple(run)) for run in out]


def _set_influence(strip, segment: Segment, ease: int, influence: float) -> None:
    strip.use_animated_influence = True
    curve = strip.fcurves.find("influence")
    while len(curve.keyframe_points):
        curve.keyframe_points.remove(curve.keyframe_points[0], fast=True)
    if ease > 0:
        points = [(segment.first - ease, 0.0), (segment.first, influence), (segment.last, influence), (segment.last + ease, 0.0)]
    else:
        points = [(segment.first, influence), (segment.last, influence)]
    points = [p for i, p in enumerate(points) if i == 0 or p[0] != points[i - 1][0]]
    curve.keyframe_points.add(len(points))
    curve.keyframe_points.foreach_set("co", [v for p in points for v in p])
    for key in curve.keyframe_points:
        key.interpolation = "LINEAR"
    curve.update()


def set_influence(scene: bpy.types.Scene, influence: float) -> None:
    """The layer's influence on every subject (the Refine panel's slider)."""
    for obj in scene.objects:
        track = refinement_track(obj) if obj.type == "ARMATURE" else None
        if track is None:
            continue
        for strip in track.strips:
            data = strip.action.get(PROP_STRIP) if strip.action is not None else None
            if data is not None:
                frames = [int(f) for f in data["frames"]]
                _set_influence(strip, Segment(int(data["first"]), int(data["last"]), tuple(frames)), int(data["ease"]), influence)


def _begin_layer(scene, armature, template: BonePose, frame: int):
    """The first refinement of ``armature``: push its active action onto a track, hold the
    static values of channels nothing animates on a base track, make the layer's track."""
    created = armature.animation_data is None
    animation = armature.animation_data or armature.animation_data_create()
    state = {"created_animation_data": int(created), "pushed_action": "", "pushed_track": "", "base_action": ""}
    if animation.action is not None:
        original = animation.action
        slot = getattr(animation, "action_slot", None)
        track = animation.nla_tracks.new()
        track.name = original.name
        strip = track.strips.new(original.name, int(original.frame_range[0]), original)
        if slot is not None and hasattr(strip, "action_slot"):
            strip.action_slot = slot
        animation.action = None
        state["pushed_action"], state["pushed_track"] = original.name, track.name
    animated = _animated_channels(animation)
    missing = [c for c in _channels(armature, template) if c not in animated]
    if missing:
        static = _read_bone_pose(armature, template)
        base, slot = new_pose_action(armature, [frame], [static], f"{armature.name} base pose (ProsePose)")
        _keep_only(base, set(missing))
        base[PROP_STRIP] = {"frames": [], "first": frame, "last": frame, "ease": 0, "role": "base"}
        track = animation.nla_tracks.new()
        track.name = BASE_TRACK_NAME
        strip = track.strips.new(base.name, frame, base)
        if slot is not None:
            strip.action_slot = slot
        strip.extrapolation = "HOLD"
        state["base_action"] = base.name
    track = animation.nla_tracks.new()
    track.name = TRACK_NAME
    armature[PROP_LAYER] = state
    return track


def write_refinement(scene, armature, frames: list[int], poses: list[BonePose], ease: int, influence: float) -> list[Segment]:
    """Put the refined ``poses`` at ``frames`` on the armature's refinement layer (see the
    module docstring); returns the layer's segments."""
    ease = max(0, int(ease))
    track = refinement_track(armature)
    if track is None:
        track = _begin_layer(scene, armature, poses[0], int(frames[0]))
    template = poses[0]
    refined: dict[int, BonePose] = {}
    old_actions = []
    for strip in list(track.strips):
        action = strip.action
        if action is not None and action.get(PROP_STRIP) is not None:
            for frame in action[PROP_STRIP]["frames"]:
                refined[int(frame)] = _pose_from_action(action, template, int(frame))
            old_actions.append(action)
        track.strips.remove(strip)
    for frame, pose in zip(frames, poses):
        refined[int(frame)] = pose  # a re-run replaces the earlier result
    parts = segments(refined, ease)
    needed = sorted({f for s in parts for f in range(s.first - ease, s.last + ease + 1)})
    original: dict[int, BonePose] = {}
    current = scene.frame_current
    with original_poses([armature]):
        for frame in needed:
            scene.frame_set(frame)
            original[frame] = _read_bone_pose(armature, template)
    scene.frame_set(current)
    for action in old_actions:
        if action.users == 0:
            bpy.data.actions.remove(action)
    for segment in parts:
        keyed_frames, keyed = [], []
        corrections = {f: _correction(original[f], _aligned(refined[f], original[f])) for f in segment.refined}
        for frame in range(segment.first - ease, segment.last + ease + 1):
            if frame in refined and segment.first <= frame <= segment.last:
                pose = _aligned(refined[frame], original[frame])
            elif frame < segment.first:
                pose = _corrected(original[frame], corrections[segment.first])
            elif frame > segment.last:
                pose = _corrected(original[frame], corrections[segment.last])
            else:  # between two runs merged into one segment
                left = max(f for f in segment.refined if f < frame)
                right = min(f for f in segment.refined if f > frame)
                mixed = _mix(corrections[left], corrections[right], (frame - left) / (right - left))
                pose = _corrected(original[frame], mixed)
            keyed_frames.append(frame)
            keyed.append(pose)
        name = f"{armature.name} refined {segment.first}-{segment.last}" if segment.last > segment.first else f"{armature.name} refined {segment.first}"
        action, slot = new_pose_action(armature, keyed_frames, keyed, name)
        action[PROP_STRIP] = {"frames": list(segment.refined), "first": segment.first, "last": segment.last, "ease": ease, "role": "refined"}
        strip = track.strips.new(name, segment.first - ease, action)
        if slot is not None and strip.action_slot != slot:
            strip.action_slot = slot
        strip.blend_type = "REPLACE"
        strip.extrapolation = "NOTHING"
        if len(keyed_frames) == 1:
            # A one-key action spans a frame; the strip must cover its frame only.
            strip.frame_end = segment.first + 0.01
        _set_influence(strip, segment, ease, influence)
    scene.frame_set(current)
    return parts


def remove_refinement(scene, armature) -> bool:
    """Delete the armature's refinement layer and what the first refinement added; True when
    there was one."""
    state = armature.get(PROP_LAYER)
    animation = armature.animation_data
    if state is None or animation is None:
        return False
    state = {k: state[k] for k in state.keys()}
    for track in list(animation.nla_tracks):
        if track.name not in (TRACK_NAME, BASE_TRACK_NAME):
            continue
        actions = [s.action for s in track.strips if s.action is not None and s.action.get(PROP_STRIP) is not None]
        base = next((a for a in actions if a[PROP_STRIP]["role"] == "base"), None)
        animation.nla_tracks.remove(track)
        if base is not None:
            # The static values the first refinement found, back on the pose bones.
            for curve in _action_curves(base):
                armature.path_resolve(curve.data_path)[curve.array_index] = curve.keyframe_points[0].co[1]
        for action in actions:
            if action.users == 0:
                bpy.data.actions.remove(action)
    if state["pushed_track"]:
        track = animation.nla_tracks.get(state["pushed_track"])
        original = bpy.data.actions.get(state["pushed_action"])
        if track is not None and original is not None and len(track.strips) == 1 and track.strips[0].action == original:
            slot = getattr(track.strips[0], "action_slot", None)
            animation.nla_tracks.remove(track)
            animation.action = original
            if slot is not None and animation.action_slot != slot:
                animation.action_slot = slot
    if state["created_animation_data"] and animation.action is None and not len(animation.nla_tracks):
        armature.animation_data_clear()
    del armature[PROP_LAYER]
    scene.frame_set(scene.frame_current)
    return True
