"""Pose conversions: anny's own pose parameters and world bone matrices <-> the job's pose.

The job's pose (``engine.refine.job.PersonPose``, ``engine.body.base``) is, per person:

* ``local_rotations`` (J, 3, 3): each joint's rotation in its own rest frame (Blender's
  ``pose_bone.rotation_quaternion`` for a bone whose rest matrix is the joint's rest frame);
* ``root_translation`` (3,): the root's offset in its rest frame, which for both bodies is the
  model frame (Blender's root bone ``location``): the posed root sits at rest head + offset.

Forward kinematics (``engine.body.kinematics``), with ``rest[j]`` the joint's rest frame
(``body.rest_joint_frames(shape)``, model frame) and ``rest[-1] = world[-1] = I``::

    world[j] = world[parent] @ rest[parent]^-1 @ rest[j] @ [local_rotation[j] | t_j]

where ``t_j`` is the root translation at the root and zero elsewhere. Its inverse is
``[local_rotation[j] | t_j] = rest[j]^-1 @ rest[parent] @ world[parent]^-1 @ world[j]``.

Two other forms a researcher may hold:

* **World bone matrices** (J, 4, 4): each joint's posed frame, i.e. Blender's
  ``pose_bone.matrix`` (armature space = the body's model frame, ``frame="model"``) or the
  engine's ``BodyOutput.joint_frames`` (world frame, ``frame="world"``; the same for Anny, whose
  model frame is the world frame). See :func:`world_matrices_to_job` and back.
* **Anny's own pose parameters** (J, 4, 4): what ``anny.Anny(...)(pose_parameters=...)`` takes.
  ``anny.Anny()`` defaults to the ``"local-ref"`` parameterisation with reference bone
  orientations U (a fixed reference pose that differs from the rest orientations by up to 6
  degrees): each bone's delta is a rigid transform relative to its reference pose expressed in
  *world-aligned axes* (``U_c D_c U_c^T`` in bone axes), and the root's delta is the root's
  posed *world* pose (its translation is the root head's position, not an offset). Bone axes
  of an arm differ from world axes by about 90 degrees, so reading these deltas as the job's
  local rotations puts vertices up to a metre off. See :func:`anny_pose_parameters_to_job`
  and back; the conversion goes through anny's own kinematics (``get_bone_transforms``) and its
  own inverse (``get_pose_parameterization``), so every anny parameterisation is supported.

Every function is pure: arrays in, arrays out (numpy in -> numpy float64 out; torch in ->
torch out with the input's floating dtype and device), any leading batch dimensions
(written ``...``), computations in float64. Wrong shapes, non-finite values and matrices that
are not rotations raise ValueError with a message naming the argument.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Sequence, Union

import numpy as np
import torch

if TYPE_CHECKING:
    from engine.body.base import BodyModel

Array = Union[np.ndarray, torch.Tensor]
Frame = Literal["model", "world"]

#: What ``anny.Anny()`` takes by default (the engine's Anny body is built with the default).
ANNY_DEFAULT_PARAMETERIZATION = "local-ref"
#: The parameterisations anny's forward accepts.
ANNY_PARAMETERIZATIONS: tuple[str, ...] = ("local-ref", "local-bone", "local-bone-world", "world-orient", "world")

# How far a rotation block may be from orthonormal (max |R^T R - I|) before it is refused.
_ROTATION_TOLERANCE = 1e-3


# --------------------------------------------------------------------------------------------
# array plumbing


class _Like:
    """Remembers the type, dtype and device of an input so outputs come back alike."""

    def __init__(self, value: Array) -> None:
        self.numpy = not isinstance(value, torch.Tensor)
        if self.numpy:
            self.dtype, self.device = torch.float64, torch.device("cpu")
        else:
            self.dtype = value.dtype if value.dtype.is_floating_point else torch.float64
            self.device = value.device

    def out(self, value: torch.Tensor) -> Array:
        if self.numpy:
            return value.detach().cpu().numpy().astype(np.float64)
        return value.to(dtype=self.dtype, device=self.device)


def _tensor(value: Array, name: str, trailing: tuple[int, ...], what: str) -> torch.Tensor:
    """``value`` as a float64 CPU tensor with the given trailing dimensions, finite."""
    if isinstance(value, torch.Tensor):
        tensor = value.to(device="cpu", dtype=torch.float64)
    else:
        try:
            tensor = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name}: expected a numeric array {what}, got {type(value).__name__} ({error})") from None
    if tensor.ndim < len(trailing) or tuple(tensor.shape[tensor.ndim - len(trailing):]) != trailing:
        raise ValueError(f"{name}: expected shape {what}, got {tuple(tensor.shape)}")
    if not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"{name}: {bad} non-finite value(s) (NaN or inf)")
    return tensor


def _check_rotations(rotations: torch.Tensor, name: str) -> None:
    """Refuse (..., 3, 3) blocks that are not rotations (scaled, sheared, reflected)."""
    if rotations.numel() == 0:
        return
    identity = torch.eye(3, dtype=rotations.dtype)
    error = (rotations.transpose(-1, -2) @ rotations - identity).abs().amax(dim=(-1, -2))
    determinant = torch.linalg.det(rotations)
    bad = (error > _ROTATION_TOLERANCE) | (determinant <= 0)
    if bool(bad.any()):
        index = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(
            f"{name}: entry {index} is not a rotation (max |R^T R - I| = {float(error[index]):.3g}, "
            f"det = {float(determinant[index]):.3g}); a scaled or sheared bone cannot be converted"
        )


def _check_rigid(matrices: torch.Tensor, name: str) -> None:
    """Refuse (..., 4, 4) matrices whose bottom row is not (0, 0, 0, 1) or whose rotation
    block is not a rotation."""
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=matrices.dtype)
    off = (matrices[..., 3, :] - bottom).abs().amax(-1)
    if bool((off > 1e-6).any()):
        index = tuple(int(i) for i in torch.nonzero(off > 1e-6)[0])
        raise ValueError(f"{name}: entry {index} is not a rigid 4x4 transform (its bottom row is not 0 0 0 1)")
    _check_rotations(matrices[..., :3, :3], name)


def _nearest_rotation(matrices: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) near-rotations -> the nearest rotations (removes round-off)."""
    u, _, vt = torch.linalg.svd(matrices)
    sign = torch.sign(torch.linalg.det(u @ vt))
    correction = torch.ones(matrices.shape[:-2] + (3,), dtype=matrices.dtype)
    correction[..., 2] = sign
    return u @ torch.diag_embed(correction) @ vt


def _rigid_inverse(matrices: torch.Tensor) -> torch.Tensor:
    """(..., 4, 4) rigid -> inverse."""
    rotation_t = matrices[..., :3, :3].transpose(-1, -2)
    translation = -(rotation_t @ matrices[..., :3, 3:])
    top = torch.cat([rotation_t, translation], dim=-1)
    bottom = torch.zeros(matrices.shape[:-2] + (1, 4), dtype=matrices.dtype)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


def _homogeneous(rotations: torch.Tensor, translations: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3), (..., 3) -> (..., 4, 4) (broadcast)."""
    batch = torch.broadcast_shapes(rotations.shape[:-2], translations.shape[:-1])
    top = torch.cat([rotations.expand(batch + (3, 3)), translations.expand(batch + (3,)).unsqueeze(-1)], dim=-1)
    bottom = torch.zeros(batch + (1, 4), dtype=top.dtype)
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


def _check_parents(parents: Sequence[int]) -> tuple[int, ...]:
    parents = tuple(int(p) for p in parents)
    if not parents or parents[0] >= 0 or any(not 0 <= p < j for j, p in enumerate(parents) if j > 0):
        raise ValueError("parents: the root must be joint 0 (parent -1) and every parent must come before its child")
    return parents


# --------------------------------------------------------------------------------------------
# generic: rest frames and parents


def local_to_world_matrices(
    local_rotations: Array,
    root_translation: Array,
    rest_frames: Array,
    parents: Sequence[int],
) -> Array:
    """The job's pose -> posed joint frames (forward kinematics, Blender's armature semantics).

    Args:
        local_rotations: (..., J, 3, 3) rotation of each joint in its own rest frame.
        root_translation: (..., 3) root offset in the root's rest frame.
        rest_frames: (..., J, 4, 4) rest frames (rigid), in the frame the result is wanted in.
        parents: (J,) parent index of each joint, -1 for the root (joint 0).
    Returns:
        (..., J, 4, 4) posed frames ``world[j] = world[p] @ rest[p]^-1 @ rest[j] @ [L_j | t_j]``,
        same array type as ``local_rotations``. Leading dimensions broadcast.
    """
    parents = _check_parents(parents)
    count = len(parents)
    like = _Like(local_rotations)
    rotations = _tensor(local_rotations, "local_rotations", (count, 3, 3), f"(..., {count}, 3, 3)")
    translation = _tensor(root_translation, "root_translation", (3,), "(..., 3)")
    rest = _tensor(rest_frames, "rest_frames", (count, 4, 4), f"(..., {count}, 4, 4)")
    _check_rotations(rotations, "local_rotations")
    _check_rigid(rest, "rest_frames")
    try:
        batch = torch.broadcast_shapes(rotations.shape[:-3], translation.shape[:-1], rest.shape[:-3])
    except RuntimeError:
        raise ValueError(
            f"local_rotations {tuple(rotations.shape)}, root_translation {tuple(translation.shape)} and "
            f"rest_frames {tuple(rest.shape)}: leading (batch) dimensions do not broadcast"
        ) from None
    return like.out(_forward(rotations, translation, rest, parents, batch))


def _forward(rotations, translation, rest, parents, batch) -> torch.Tensor:
    count = len(parents)
    rotations = rotations.expand(batch + (count, 3, 3))
    rest = rest.expand(batch + (count, 4, 4))
    zero = torch.zeros(batch + (3,), dtype=rotations.dtype)
    # relative[j] = rest[p]^-1 @ rest[j] @ [L_j | t_j] (rest[-1] = I)
    local = _homogeneous(
        rotations,
        torch.cat([translation.expand(batch + (3,)).unsqueeze(-2), zero.unsqueeze(-2).expand(batch + (count - 1, 3))], dim=-2),
    )
    identity = torch.eye(4, dtype=rest.dtype).expand(batch + (1, 4, 4))
    parent_rest = torch.cat([identity, rest[..., list(parents[1:]), :, :]], dim=-3)
    relative = _rigid_inverse(parent_rest) @ rest @ local
    world: list[torch.Tensor] = []
    for joint, parent in enumerate(parents):
        world.append(relative[..., joint, :, :] if parent < 0 else world[parent] @ relative[..., joint, :, :])
    return torch.stack(world, dim=-3)


def world_matrices_to_local(
    world_matrices: Array,
    rest_frames: Array,
    parents: Sequence[int],
    *,
    offset_tolerance: float | None = 0.01,
) -> tuple[Array, Array]:
    """Posed joint frames -> the job's pose (the inverse of :func:`local_to_world_matrices`).

    Args:
        world_matrices: (..., J, 4, 4) rigid posed frames, in the frame of ``rest_frames``.
        rest_frames: (..., J, 4, 4) rest frames (rigid).
        parents: (J,) parent index of each joint, -1 for the root (joint 0).
        offset_tolerance: metres. The job moves only the root; a joint whose frame is offset
            from where its parent puts it by more than this (a stretched bone, another body
            shape, another frame convention) raises ValueError. None accepts any offset and
            drops it.
    Returns:
        local_rotations (..., J, 3, 3) and root_translation (..., 3), same array type as
        ``world_matrices``: ``[L_j | t_j] = rest[j]^-1 @ rest[p] @ world[p]^-1 @ world[j]``,
        the rotation blocks projected onto the nearest rotation (round-off).
    """
    parents = _check_parents(parents)
    count = len(parents)
    like = _Like(world_matrices)
    world = _tensor(world_matrices, "world_matrices", (count, 4, 4), f"(..., {count}, 4, 4)")
    rest = _tensor(rest_frames, "rest_frames", (count, 4, 4), f"(..., {count}, 4, 4)")
    _check_rigid(world, "world_matrices")
    _check_rigid(rest, "rest_frames")
    try:
        batch = torch.broadcast_shapes(world.shape[:-3], rest.shape[:-3])
    except RuntimeError:
        raise ValueError(
            f"world_matrices {tuple(world.shape)} and rest_frames {tuple(rest.shape)}: "
            "leading (batch) dimensions do not broadcast"
        ) from None
    rotations, translation = _inverse(
        world.expand(batch + (count, 4, 4)), rest.expand(batch + (count, 4, 4)), parents, offset_tolerance
    )
    return like.out(rotations), like.out(translation)


def _inverse(world, rest, parents, offset_tolerance, names=None) -> tuple[torch.Tensor, torch.Tensor]:
    batch = world.shape[:-3]
    parent_index = list(parents[1:])
    identity = torch.eye(4, dtype=world.dtype).expand(batch + (1, 4, 4))
    parent_rest = torch.cat([identity, rest[..., parent_index, :, :]], dim=-3)
    parent_world = torch.cat([identity, world[..., parent_index, :, :]], dim=-3)
    local = _rigid_inverse(rest) @ parent_rest @ _rigid_inverse(parent_world) @ world
    if offset_tolerance is not None and len(parents) > 1:
        offsets = local[..., 1:, :3, 3].norm(dim=-1)  # (..., J - 1)
        if bool((offsets > offset_tolerance).any()):
            worst = offsets.reshape(-1, len(parents) - 1).amax(0)
            joint = int(worst.argmax()) + 1
            label = f"joint {joint}" if names is None else f"joint {joint} ({names[joint]})"
            raise ValueError(
                f"world_matrices: {label} is {float(worst.max()) * 100:.1f} cm from where its parent "
                f"and the rest frames put it (tolerance {offset_tolerance * 100:.1f} cm): the matrices do not "
                "come from this body and shape in this frame (check `shape` and `frame`), or a bone is "
                "stretched; the job can only move the root"
            )
    return _nearest_rotation(local[..., :3, :3]), local[..., 0, :3, 3]


# --------------------------------------------------------------------------------------------
# a body's rest frames


def _shape_tensor(body: "BodyModel", shape: Array | None) -> torch.Tensor:
    """(S,) or (..., S) shape, None = the body's neutral shape -> float64 (..., S)."""
    count = len(body.shape_names)
    if shape is None:
        return body.default_shape().detach().to(torch.float64)
    return _tensor(shape, "shape", (count,), f"(..., {count}) ({', '.join(body.shape_names)})")


def _flat_rest_frames(body: "BodyModel", shape: torch.Tensor) -> torch.Tensor:
    """(..., S) -> (..., J, 4, 4) the body's rest frames in its model frame (float64)."""
    flat = shape.reshape(-1, shape.shape[-1])
    with torch.no_grad():
        frames = body.rest_joint_frames(flat.to(getattr(body, "dtype", torch.float32))).to(torch.float64)
    frames = frames.reshape(shape.shape[:-1] + frames.shape[1:])
    # Re-orthonormalise the float32 rotation blocks (round-off only).
    return _homogeneous(_nearest_rotation(frames[..., :3, :3]), frames[..., :3, 3])


def _model_to_world_4x4(body: "BodyModel") -> torch.Tensor:
    rotation = torch.as_tensor(np.asarray(body.model_to_world, dtype=np.float64))
    return _homogeneous(rotation, torch.zeros(3, dtype=torch.float64))


def _check_frame(frame: str) -> None:
    if frame not in ("model", "world"):
        raise ValueError(f"frame: {frame!r} is not 'model' (armature space, Blender's pose_bone.matrix) or 'world'")


def job_to_world_matrices(
    body: "BodyModel",
    local_rotations: Array,
    root_translation: Array,
    shape: Array | None = None,
    *,
    frame: Frame = "model",
) -> Array:
    """The job's pose -> posed joint frames of ``body``.

    Args:
        body: an engine body (``engine.body.load_body``): Anny or SMPL-X.
        local_rotations: (..., J, 3, 3) job rotations (rest-frame local rotations).
        root_translation: (..., 3) job root translation (model frame).
        shape: (S,) or (..., S) shape coefficients; None = the body's neutral shape.
        frame: "model": the body's model frame = Blender's armature space
            (``pose_bone.matrix``); "world": the engine's world frame (Z up), as in
            ``body.forward(...).joint_frames`` (identical for Anny).
    Returns:
        (..., J, 4, 4) posed joint frames, same array type as ``local_rotations``.
    """
    _check_frame(frame)
    count = len(body.joint_names)
    like = _Like(local_rotations)
    rotations = _tensor(local_rotations, "local_rotations", (count, 3, 3), f"(..., {count}, 3, 3)")
    translation = _tensor(root_translation, "root_translation", (3,), "(..., 3)")
    _check_rotations(rotations, "local_rotations")
    rest = _flat_rest_frames(body, _shape_tensor(body, shape))
    try:
        batch = torch.broadcast_shapes(rotations.shape[:-3], translation.shape[:-1], rest.shape[:-3])
    except RuntimeError:
        raise ValueError(
            f"local_rotations {tuple(rotations.shape)}, root_translation {tuple(translation.shape)} and shape: "
            "leading (batch) dimensions do not broadcast"
        ) from None
    world = _forward(rotations, translation, rest, body.parents, batch)
    if frame == "world":
        world = _model_to_world_4x4(body) @ world
    return like.out(world)


def world_matrices_to_job(
    body: "BodyModel",
    world_matrices: Array,
    shape: Array | None = None,
    *,
    frame: Frame = "model",
    offset_tolerance: float | None = 0.01,
) -> tuple[Array, Array]:
    """Posed joint frames of ``body`` -> the job's pose (inverse of :func:`job_to_world_matrices`).

    Args:
        body: an engine body (Anny or SMPL-X).
        world_matrices: (..., J, 4, 4) posed rigid frames of the body's joints, in the body's
            joint order: Blender's ``pose_bone.matrix`` of the body's armature (``frame="model"``)
            or ``body.forward(...).joint_frames`` (``frame="world"``).
        shape: (S,) or (..., S) the shape the matrices were posed with; None = neutral.
        frame: see :func:`job_to_world_matrices`.
        offset_tolerance: see :func:`world_matrices_to_local` (metres; None = drop offsets).
    Returns:
        local_rotations (..., J, 3, 3) and root_translation (..., 3), same array type as
        ``world_matrices``.
    """
    _check_frame(frame)
    count = len(body.joint_names)
    like = _Like(world_matrices)
    world = _tensor(world_matrices, "world_matrices", (count, 4, 4), f"(..., {count}, 4, 4)")
    _check_rigid(world, "world_matrices")
    if frame == "world":
        world = _rigid_inverse(_model_to_world_4x4(body)) @ world
    rest = _flat_rest_frames(body, _shape_tensor(body, shape))
    try:
        batch = torch.broadcast_shapes(world.shape[:-3], rest.shape[:-3])
    except RuntimeError:
        raise ValueError(f"world_matrices {tuple(world.shape)} and shape: leading (batch) dimensions do not broadcast") from None
    rotations, translation = _inverse(
        world.expand(batch + (count, 4, 4)), rest.expand(batch + (count, 4, 4)), body.parents, offset_tolerance,
        body.joint_names,
    )
    return like.out(rotations), like.out(translation)


# --------------------------------------------------------------------------------------------
# anny's own pose parameters


def _anny_model(body: "BodyModel"):
    model = getattr(body, "_anny", None)
    if getattr(body, "kind", None) != "anny" or model is None:
        raise ValueError(
            f"anny's own pose parameters exist only for the anny body, not {getattr(body, 'kind', type(body).__name__)!r}; "
            "use world_matrices_to_job / job_to_world_matrices for other bodies"
        )
    return model


def _anny_rest(body: "BodyModel", shape: torch.Tensor):
    """(..., 6) -> anny's rest bone poses (N or 1, J, 4, 4) by anny's own code, and the
    engine's rest frames (same batch)."""
    model = _anny_model(body)
    flat = shape.reshape(-1, shape.shape[-1]).to(model.dtype)
    empty = torch.zeros(flat.shape[0], 0, dtype=model.dtype)
    with torch.no_grad():
        coefficients = model._get_phenotype_blendshape_coefficients(flat, empty, empty)
        anny_rest = model.get_rest_model(coefficients)["rest_bone_poses"].to(torch.float64)
    return anny_rest, _flat_rest_frames(body, flat.to(torch.float64))


def _check_parameterization(model, parameterization: str | None) -> str:
    chosen = parameterization or getattr(model, "pose_parameterization", None) or ANNY_DEFAULT_PARAMETERIZATION
    if chosen not in ANNY_PARAMETERIZATIONS:
        raise ValueError(f"parameterization: {chosen!r} is not one of anny's: {', '.join(ANNY_PARAMETERIZATIONS)}")
    return chosen


def _batched_shape(shape: torch.Tensor, batch: torch.Size) -> torch.Tensor:
    """A shared (S,) shape stays (S,) (one rest skeleton for every pose); a batched one is
    broadcast to the poses' batch."""
    return shape if shape.ndim == 1 else shape.expand(batch + shape.shape[-1:])


def _flatten_batch(tensor: torch.Tensor, trailing: int, batch: torch.Size) -> torch.Tensor:
    return tensor.expand(batch + tensor.shape[tensor.ndim - trailing:]).reshape((-1,) + tensor.shape[tensor.ndim - trailing:])


def _stack_bone_dict(body: "BodyModel", parameters: dict) -> Array:
    """anny's dictionary form (bone label -> (..., 4, 4), missing bones = identity) -> (..., J, 4, 4)."""
    index = {name: j for j, name in enumerate(body.joint_names)}
    unknown = sorted(set(parameters) - set(index))
    if unknown:
        raise ValueError(
            f"pose_parameters: unknown bone label(s) {unknown} "
            f"(anny's bone_labels are e.g. {', '.join(body.joint_names[:4])}, ...)"
        )
    if not parameters:
        return np.tile(np.eye(4), (len(index), 1, 1))
    use_torch = any(isinstance(v, torch.Tensor) for v in parameters.values())
    values = {name: _tensor(v, f"pose_parameters[{name!r}]", (4, 4), "(..., 4, 4)") for name, v in parameters.items()}
    try:
        batch = torch.broadcast_shapes(*(v.shape[:-2] for v in values.values()))
    except RuntimeError:
        raise ValueError("pose_parameters: the bones' leading (batch) dimensions do not broadcast") from None
    stacked = torch.eye(4, dtype=torch.float64).repeat(batch + (len(index), 1, 1))
    for name, value in values.items():
        stacked[..., index[name], :, :] = value
    return stacked if use_torch else stacked.numpy()


def anny_pose_parameters_to_job(
    body: "BodyModel",
    pose_parameters: Array,
    shape: Array | None = None,
    *,
    parameterization: str | None = None,
    offset_tolerance: float | None = 0.01,
) -> tuple[Array, Array]:
    """Anny's own pose parameters -> the job's pose (anny body only).

    Args:
        body: the engine's anny body (``load_body("anny")``).
        pose_parameters: (..., J, 4, 4) what ``anny.Anny()(pose_parameters=..., phenotype_kwargs=...)``
            takes, in ``body.joint_names`` order (= anny's ``bone_labels``), or anny's dictionary
            form {bone label: (..., 4, 4)} (bones not listed = identity).
        shape: (6,) or (..., 6) phenotypes (gender, age, muscle, weight, height, proportions),
            the ``phenotype_kwargs`` given to anny; None = 0.5 each (anny's default too).
        parameterization: anny's pose parameterisation; None = the model's default,
            ``"local-ref"`` (see the module docstring). ``"world"`` reads anny's output
            ``bone_poses``.
        offset_tolerance: metres; deltas that move a non-root bone's head by more than this
            (the job only translates the root) raise ValueError; None drops them.
    Returns:
        local_rotations (..., J, 3, 3) and root_translation (..., 3), same array type as
        ``pose_parameters``. ``body.forward`` on them gives anny's vertices (float round-off).
    """
    model = _anny_model(body)
    chosen = _check_parameterization(model, parameterization)
    count = len(body.joint_names)
    if isinstance(pose_parameters, dict):
        pose_parameters = _stack_bone_dict(body, pose_parameters)
    like = _Like(pose_parameters)
    deltas = _tensor(pose_parameters, "pose_parameters", (count, 4, 4), f"(..., {count}, 4, 4)")
    _check_rotations(deltas[..., :3, :3], "pose_parameters")
    shape_values = _shape_tensor(body, shape)
    try:
        batch = torch.broadcast_shapes(deltas.shape[:-3], shape_values.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"pose_parameters {tuple(deltas.shape)} and shape: leading (batch) dimensions do not broadcast"
        ) from None
    anny_rest, engine_rest = _anny_rest(body, _batched_shape(shape_values, batch))
    flat = _flatten_batch(deltas, 3, batch).to(model.dtype)
    with torch.no_grad():
        transforms, _ = model.get_bone_transforms(flat, anny_rest.to(model.dtype), pose_parameterization=chosen)
    # Same skinning transforms T = W_anny @ P_anny^-1 = world @ rest^-1: world = T @ rest.
    world = transforms.to(torch.float64) @ engine_rest
    rotations, translation = _inverse(world, engine_rest.expand_as(world), body.parents, offset_tolerance, body.joint_names)
    return like.out(rotations.reshape(batch + (count, 3, 3))), like.out(translation.reshape(batch + (3,)))


def job_to_anny_pose_parameters(
    body: "BodyModel",
    local_rotations: Array,
    root_translation: Array,
    shape: Array | None = None,
    *,
    parameterization: str | None = None,
) -> Array:
    """The job's pose -> anny's own pose parameters (anny body only; inverse of
    :func:`anny_pose_parameters_to_job`).

    Args:
        body: the engine's anny body.
        local_rotations: (..., J, 3, 3) job rotations; root_translation: (..., 3).
        shape: (6,) or (..., 6) phenotypes; None = neutral.
        parameterization: anny's pose parameterisation; None = the model's default ("local-ref").
    Returns:
        (..., J, 4, 4) pose parameters for ``anny.Anny()(pose_parameters=..., phenotype_kwargs=shape)``
        (computed by anny's own ``get_pose_parameterization``), same array type as
        ``local_rotations``.
    """
    model = _anny_model(body)
    chosen = _check_parameterization(model, parameterization)
    count = len(body.joint_names)
    like = _Like(local_rotations)
    rotations = _tensor(local_rotations, "local_rotations", (count, 3, 3), f"(..., {count}, 3, 3)")
    translation = _tensor(root_translation, "root_translation", (3,), "(..., 3)")
    _check_rotations(rotations, "local_rotations")
    shape_values = _shape_tensor(body, shape)
    try:
        batch = torch.broadcast_shapes(rotations.shape[:-3], translation.shape[:-1], shape_values.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"local_rotations {tuple(rotations.shape)}, root_translation {tuple(translation.shape)} and shape: "
            "leading (batch) dimensions do not broadcast"
        ) from None
    anny_rest, engine_rest = _anny_rest(body, _batched_shape(shape_values, batch))
    flat_batch = torch.Size((int(np.prod(batch, dtype=np.int64)),))
    world = _forward(
        _flatten_batch(rotations, 3, batch), _flatten_batch(translation, 1, batch), engine_rest, body.parents, flat_batch
    )
    anny_world = world @ _rigid_inverse(engine_rest) @ anny_rest
    with torch.no_grad():
        parameters = model.get_pose_parameterization(
            {"rest_bone_poses": anny_rest.expand_as(anny_world).to(model.dtype), "bone_poses": anny_world.to(model.dtype)},
            chosen,
        )
    return like.out(parameters.to(torch.float64).reshape(batch + (count, 4, 4)))


# --------------------------------------------------------------------------------------------
# the job file's form


def rotations_to_quaternions(local_rotations: Array) -> Array:
    """(..., 3, 3) rotations -> (..., 4) unit quaternions (w, x, y, z), w >= 0: the job's form."""
    import roma

    like = _Like(local_rotations)
    rotations = _tensor(local_rotations, "local_rotations", (3, 3), "(..., 3, 3)")
    _check_rotations(rotations, "local_rotations")
    xyzw = roma.rotmat_to_unitquat(_nearest_rotation(rotations))
    wxyz = torch.cat([xyzw[..., 3:], xyzw[..., :3]], dim=-1)
    return like.out(torch.where(wxyz[..., :1] < 0, -wxyz, wxyz))


def quaternions_to_rotations(quaternions: Array) -> Array:
    """(..., 4) quaternions (w, x, y, z), normalised here -> (..., 3, 3) rotations."""
    import roma

    like = _Like(quaternions)
    values = _tensor(quaternions, "quaternions", (4,), "(..., 4) (w, x, y, z)")
    norm = values.norm(dim=-1, keepdim=True)
    if bool((norm < 1e-6).any()):
        raise ValueError("quaternions: a zero quaternion is not a rotation")
    xyzw = torch.cat([values[..., 1:], values[..., :1]], dim=-1) / norm
    return like.out(roma.unitquat_to_rotmat(xyzw))


def job_rotations(joint_names: Sequence[str], local_rotations: Array) -> dict[str, tuple[float, float, float, float]]:
    """(J, 3, 3) local rotations -> the job's ``rotations`` entry (joint name -> [w, x, y, z]),
    every joint listed, ready for ``PersonPose(rotations=...)`` or the job's JSON."""
    if isinstance(local_rotations, torch.Tensor):
        local_rotations = local_rotations.detach().cpu().numpy()
    quaternions = rotations_to_quaternions(np.asarray(local_rotations, dtype=np.float64))
    if quaternions.shape != (len(joint_names), 4):
        raise ValueError(
            f"local_rotations: expected ({len(joint_names)}, 3, 3) for {len(joint_names)} joints, "
            f"got {quaternions.shape[:-1] + (3, 3)}"
        )
    return {name: tuple(float(v) for v in quaternions[j]) for j, name in enumerate(joint_names)}  # type: ignore[misc]


def rotations_from_job(joint_names: Sequence[str], rotations: dict) -> np.ndarray:
    """The job's ``rotations`` entry (joint name -> [w, x, y, z]; missing joints = identity)
    -> (J, 3, 3) float64 local rotations in ``joint_names`` order."""
    index = {name: j for j, name in enumerate(joint_names)}
    unknown = sorted(set(rotations) - set(index))
    if unknown:
        raise ValueError(f"rotations: unknown joint(s) {unknown}")
    out = np.tile(np.eye(3), (len(joint_names), 1, 1))
    if rotations:
        names = list(rotations)
        out[[index[n] for n in names]] = quaternions_to_rotations(np.asarray([rotations[n] for n in names], dtype=np.float64))
    return out
