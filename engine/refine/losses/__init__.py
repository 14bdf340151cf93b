"""Loss terms of the refinement, in one registry.

``LOSS_TERMS`` maps each weight name of the job (``engine.refine.job.WEIGHT_NAMES``) to a small
typed function ``(LossInputs) -> dict[str, Tensor]``; :func:`get_term` raises on an unknown
name. See ``engine.refine.losses.terms`` for each term and ``engine.refine.losses.contact`` for the fast
contact objective.
"""

from __future__ import annotations

from typing import Callable

import torch

from engine.refine.losses.terms import (
    LossInputs,
    LossSetup,
    contact_term,
    joint_limits_term,
    keypoints_2d_term,
    penetration_term,
    shape_prior_term,
    stay_close_term,
)

LossTerm = Callable[[LossInputs], dict[str, torch.Tensor]]

LOSS_TERMS: dict[str, LossTerm] = {
    "contact": contact_term,
    "stay_close": stay_close_term,
    "joint_limits": joint_limits_term,
    "penetration": penetration_term,
    "shape_prior": shape_prior_term,
    "keypoints_2d": keypoints_2d_term,
}


def get_term(name: str) -> LossTerm:
    """The loss term called ``name``; raises ``KeyError`` naming the known terms otherwise."""
    try:
        return LOSS_TERMS[name]
    except KeyError:
        raise KeyError(f"unknown loss term {name!r}; known terms: {', '.join(LOSS_TERMS)}") from None


def evaluate(inputs: LossInputs, weights: dict[str, float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted total and every named value. Terms with weight 0 are skipped."""
    total = inputs.vertices.new_zeros(())
    values: dict[str, torch.Tensor] = {}
    for name, weight in weights.items():
        term = get_term(name)
        if weight == 0.0:
            continue
        named = term(inputs)
        values.update(named)
        total = total + weight * named[name]
    return total, values


__all__ = ["LOSS_TERMS", "LossInputs", "LossSetup", "LossTerm", "evaluate", "get_term"]
