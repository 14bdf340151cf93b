"""Small rotation helpers shared by the losses and the optimizer."""

from __future__ import annotations

import torch

_EPS = 1e-12
# Row k of this (9, 3) matrix reads component k of vee(A - A^T) = (A21 - A12, A02 - A20,
# A10 - A01) from the nine entries of A (row-major): one product instead of six selections.
_VEE_OF_ANTISYMMETRIC = torch.tensor(
    [[0, 0, 0], [0, 0, -1], [0, 1, 0], [0, 0, 1], [0, 0, 0], [-1, 0, 0], [0, -1, 0], [1, 0, 0], [0, 0, 0]],
    dtype=torch.float32,
)


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


class _RotateByAxisAngle(torch.autograd.Function):
    """base @ exp(axis_angle) with a hand-written backward: one autograd node instead of the
    twenty-odd of Rodrigues' formula and the product (see rotate_by_axis_angle)."""

    @staticmethod
    def forward(ctx, base, axis_angle):
        with torch.no_grad():
            rotated = base @ axis_angle_to_matrix(axis_angle)
        ctx.save_for_backward(base, axis_angle, rotated)
        return rotated

    @staticmethod
    def backward(ctx, grad):
        base, axis_angle, rotated = ctx.saved_tensors
        grad_base = grad_axis_angle = None
        if ctx.needs_input_grad[0]:
            grad_base = grad @ (base.transpose(-1, -2) @ rotated).transpose(-1, -2)
        if ctx.needs_input_grad[1]:
            # A change dv of the rotated frame, rotated @ (I + [dv]x), changes the loss by
            # dv . vee(A - A^T) with A = rotated^T @ grad; and dv = J_r(w) dw with the right
            # Jacobian J_r(w) = I - a [w]x + b [w]x^2, a = (1 - cos t) / t^2,
            # b = (t - sin t) / t^3, t = |w|. Below t = 0.1 their series, to the t^6 term:
            # in float32 the closed forms lose digits there (1 - cos t cancels).
            a_matrix = rotated.transpose(-1, -2) @ grad
            v = a_matrix.flatten(-2) @ _VEE_OF_ANTISYMMETRIC.to(a_matrix.dtype)  # vee(A - A^T)
            t2 = (axis_angle * axis_angle).sum(-1, keepdim=True)
            angle = torch.sqrt(t2 + _EPS)
            small = t2 < 1e-2
            a_series = 1.0 / 2.0 + t2 * (-1.0 / 24.0 + t2 * (1.0 / 720.0 - t2 / 40320.0))
            b_series = 1.0 / 6.0 + t2 * (-1.0 / 120.0 + t2 * (1.0 / 5040.0 - t2 / 362880.0))
            a = torch.where(small, a_series, (1.0 - torch.cos(angle)) / t2.clamp_min(1e-2))
            b = torch.where(small, b_series, (angle - torch.sin(angle)) / (t2 * angle).clamp_min(1e-3))
            cross = torch.linalg.cross(axis_angle, v)
            grad_axis_angle = v + a * cross + b * torch.linalg.cross(axis_angle, cross)
        return grad_base, grad_axis_angle


def rotate_by_axis_angle(base: torch.Tensor, axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotations, (..., 3) axis-angle offsets -> base @ exp(axis_angle), the
    same values and gradients as ``base @ axis_angle_to_matrix(axis_angle)``."""
    return _RotateByAxisAngle.apply(base, axis_angle)


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
