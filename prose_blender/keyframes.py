"""Write poses as keyframes into a new action on its own NLA track, leaving existing
animation untouched. Works with the slotted actions of Blender 4.4+ (layers, strips,
channelbags) and with 4.2/4.3's ``action.fcurves``."""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np

from .poses import BonePose


@dataclass(frozen=True)
class WrittenAction:
    action: bpy.types.Action
    track: bpy.types.NlaTrack


def has_slotted_actions() -> bool:
    return bpy.app.version >= (4, 4, 0)


def _channel_series(frames: list[int], poses: list[BonePose]) -> dict[tuple[str, int, str], np.ndarray]:
    """(data path, array index, group) -> (K, 2) [frame, value] rows."""
    series: dict[tuple[str, int, str], list[tuple[float, float]]] = {}
    for frame, pose in zip(frames, poses):
        for bone, quaternion in pose.rotations.items():
            path = f'pose.bones["{bpy.utils.escape_identifier(bone)}"].rotation_quaternion'
            for index in range(4):
                series.setdefault((path, index, bone), []).append((frame, quaternion[index]))
        path = f'pose.bones["{bpy.utils.escape_identifier(pose.root_bone)}"].location'
        for index in range(3):
            series.setdefault((path, index, pose.root_bone), []).append((frame, pose.root_location[index]))
    return {key: np.asarray(rows, dtype=np.float32) for key, rows in series.items()}


def new_pose_action(armature: bpy.types.Object, frames: list[float], poses: list[BonePose], name: str):
    """A new action keying ``poses`` at ``frames``; returns (action, slot or None)."""
    action = bpy.data.actions.new(name)
    series = _channel_series(frames, poses)
    slot = None
    if has_slotted_actions():
        slot = action.slots.new(id_type="OBJECT", name=armature.name)
        strip = action.layers.new("Layer").strips.new(type="KEYFRAME")
        bag = strip.channelbag(slot, ensure=True)
        groups = {}
        for (path, index, group_name), rows in series.items():
            curve = bag.fcurves.new(path, index=index)
            group = groups.get(group_name) or groups.setdefault(group_name, bag.groups.new(group_name))
            curve.group = group
            _fill(curve, rows)
    else:
        for (path, index, group_name), rows in series.items():
            curve = action.fcurves.new(path, index=index, action_group=group_name)
            _fill(curve, rows)
    return action, slot


def assign_action(armature: bpy.types.Object, action: bpy.types.Action, slot) -> None:
    """Make ``action`` the armature's active action (the slot too on 4.4+)."""
    animation = armature.animation_data or armature.animation_data_create()
    animation.action = action
    if slot is not None and animation.action_slot != slot:
        animation.action_slot = slot


def write_pose_action(
    armature: bpy.types.Object, frames: list[int], poses: list[BonePose], name: str
) -> WrittenAction:
    """Key ``poses`` at ``frames`` in a new action placed on a new NLA track at the top.

    An active action the armature already plays is moved, unchanged, onto an NLA track below
    (Blender evaluates the active action above every track, so it would hide the new one)."""
    action, slot = new_pose_action(armature, frames, poses, name)
    animation = armature.animation_data or armature.animation_data_create()
    had_animation = animation.action is not None or len(animation.nla_tracks) > 0
    if animation.action is not None:
        _push_down(animation)
    track = animation.nla_tracks.new()
    track.name = name
    nla_strip = track.strips.new(name, int(min(frames)), action)
    if slot is not None and nla_strip.action_slot != slot:
        nla_strip.action_slot = slot
    nla_strip.blend_type = "REPLACE"
    # Over an existing clip only the refined frames change; a lone pose holds everywhere.
    nla_strip.extrapolation = "NOTHING" if had_animation else "HOLD"
    return WrittenAction(action, track)


def _fill(curve: bpy.types.FCurve, rows: np.ndarray) -> None:
    curve.keyframe_points.add(len(rows))
    curve.keyframe_points.foreach_set("co", rows.ravel())
    curve.update()


def _push_down(animation: bpy.types.AnimData) -> None:
    original = animation.action
    slot = getattr(animation, "action_slot", None)
    track = animation.nla_tracks.new()
    track.name = original.name
    start = int(original.frame_range[0])
    strip = track.strips.new(original.name, start, original)
    if slot is not None and hasattr(strip, "action_slot"):
        strip.action_slot = slot
    animation.action = None
