"""The people of the scene: the armatures picked in the Subjects panel."""

from __future__ import annotations

from dataclasses import dataclass

import bpy

from .bodies import BodyInfo, body_info, body_mesh


@dataclass(frozen=True)
class Subject:
    index: int  # 0-based person index (Person 1 = 0)
    armature: bpy.types.Object
    info: BodyInfo
    movable: bool

    @property
    def mesh(self) -> bpy.types.Object | None:
        return body_mesh(self.armature)


def scene_subjects(scene: bpy.types.Scene) -> list[Subject]:
    """Person 1 and Person 2 when set (Person 2 alone counts as the only person)."""
    prose = scene.prose
    picked = [(prose.person_1, prose.move_person_1), (prose.person_2, prose.move_person_2)]
    subjects = []
    for armature, movable in picked:
        if armature is not None:
            subjects.append(Subject(len(subjects), armature, body_info(armature), bool(movable)))
    return subjects
