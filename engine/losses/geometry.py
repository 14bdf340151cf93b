"""Small rotation helpers shared by the losses and the optimizer."""

from __future__ import annotations

import torch

_EPS = 1e-12


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices (Rodrigues), smooth at zero."""
    angle_sq = (axis_angle * axis_angle).sum(-1, keepdim=True)
    angle = torch.sqrt(angle_sq + _EPS)
    # Taylor forms near zero keep the gradient finite at the identity.
    small = angle_sq < 1e-8
    sin_over = torch.where(small, 1.0 - angle_sq / 6.0, torch.sin(angle) / angle)
    one_minus_cos_over = torch.where(small, 0.5 - angle_sq / 24.0, (1.0 - torch.cos(angle)) / (angle * angle))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis_angle.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(skew)
    return eye + sin_over[..., None] * skew + one_minus_cos_over[..., None] * (skew @ skew)


def rotation_angle(rotations: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (...,) rotation angle in radians, via atan2 (stable over [0, pi])."""
    trace = rotations[..., 0, 0] + rotations[..., 1, 1] + rotations[..., 2, 2]
    vee = torch.stack(
        [
            rotations[..., 2, 1] - rotations[..., 1, 2],
            rotations[..., 0, 2] - rotations[..., 2, 0],
            rotations[..., 1, 0] - rotations[..., 0, 1],
        ],
        dim=-1,
    )
    sin_twice = torch.sqrt((vee * vee).sum(-1) + _EPS)
    return torch.atan2(sin_twice, trace - 1.0)


def quaternion_to_matrix(quaternions: torch.Tensor) -> torch.Tensor:
    """(..., 4) unit quaternions (w, x, y, z) -> (..., 3, 3)."""
    q = quaternions / quaternions.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quaternion(matrices: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotations -> (..., 4) unit quaternions (w, x, y, z) with w >= 0."""
    m = matrices
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    candidates = torch.stack(
        [
            torch.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
            torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
        ],
        dim=-2,
    )  # (..., 4, 4): row k is 4 * q * q_k
    diagonal = torch.stack([1 + trace, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1)
    best = diagonal.argmax(-1)
    chosen = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    q = chosen / chosen.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)
