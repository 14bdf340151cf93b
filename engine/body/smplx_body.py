"""SMPL-X on the user's own model file, loaded by the real ``smplx`` package from arrays this
engine has read without running code from the file (``engine.body.model_file``).

The model file is licensed: it comes from the SMPL-X website under its licence, the user points
the engine at it, and the project never ships, copies or downloads it. Only derived data that is
not the model (region vertex ids, keyed by the file's hash) is cached.

Frames: SMPL-X is Y up, facing +Z, left on +X; ``model_to_world`` maps (x, y, z) -> (x, -z, y)
(Z up, facing -Y, like Anny). Rest joint frames are the identity orientation at the joint
positions, so SMPL-X's local axis-angle rotations are exactly the local rotations of the
interface, and ``transl`` is the root translation.

Posing reads the ``smplx`` layer's buffers (template, shape directions, joint regressor, pose
correctives, weights) and runs the engine's own kinematics and skinning
(``engine.body.kinematics``), because the losses need only a few thousand vertices and skinning
just those keeps an optimization step cheap. Tests check it against the ``smplx`` forward pass.

``pose_correctives`` (default False): SMPL-X adds pose-dependent corrective offsets before
skinning. Blender's armature cannot show them (it does plain linear blend skinning), so with the
default the engine optimizes exactly the surface the artist sees in Blender; True gives SMPL-X's
own surface (for export to SMPL-X tools), which then differs from Blender's by a few millimetres
to a centimetre or two at bent joints.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import tempfile
import zipfile
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from engine.body.base import BodyModel, BodyOutput
from engine.body.model_file import ModelFileError, read_model_arrays
from engine.errors import BodyModelError
from engine.body.kinematics import (
    KinematicTree,
    RestCache,
    VertexSubsetCache,
    cached_rest_transforms,
    cached_rest_vertices,
    cached_skinning_matrix,
    homogeneous,
    pose_and_skin,
)
from engine.body.smplx_data import SMPLX_JOINT_NAMES, SMPLX_NUM_VERTICES, SMPLX_PARENTS

MODEL_FILE_HINT = (
    "SMPL-X model files come from the SMPL-X website (https://smpl-x.is.tue.mpg.de) under its "
    "licence; download SMPLX_NEUTRAL.npz (or another gender) there yourself and pass its path: "
    "this project never downloads or ships it"
)

SMPLX_MODEL_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

# Keys the smplx loader reads, with the shape each must have (V vertices, J joints; None = any).
_J = len(SMPLX_JOINT_NAMES)
_REQUIRED_KEYS: dict[str, tuple] = {
    "v_template": ("V", 3),
    "f": (None, 3),
    "shapedirs": ("V", 3, None),
    "posedirs": ("V", 3, (_J - 1) * 9),
    "J_regressor": (_J, "V"),
    "weights": ("V", _J),
    "kintree_table": (2, _J),
    "hands_componentsl": (None, 45),
    "hands_componentsr": (None, 45),
    "hands_meanl": (45,),
    "hands_meanr": (45,),
    "lmk_faces_idx": (None,),
    "lmk_bary_coords": (None, 3),
}


def _model_error(path, problem: str) -> BodyModelError:
    return BodyModelError(f"SMPL-X model file {path}: {problem}. {MODEL_FILE_HINT}")


def read_smplx_model(model_path: str | Path | None) -> tuple[Path, dict[str, np.ndarray]]:
    """Read the user's SMPL-X model file (``.npz``, or the ``.pkl`` of the official
    distribution) without running any code from it (``engine.body.model_file``), check every
    key and shape the loader needs, and return the path and those arrays (nothing else of the
    file). Raises BodyModelError (one line naming the file)."""
    if model_path is None or str(model_path) == "":
        raise BodyModelError(f"the smplx body needs an SMPL-X model file (--model-file). {MODEL_FILE_HINT}")
    path = Path(model_path).expanduser()
    if not path.exists():
        raise _model_error(path, "not found")
    if path.is_dir():
        raise _model_error(path, "is a folder; give the .npz file itself")
    try:
        data = read_model_arrays(path)
    except ModelFileError as error:
        raise _model_error(path, str(error)) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise _model_error(path, f"cannot be read as an .npz archive ({reason})") from None
    missing = sorted(set(_REQUIRED_KEYS) - set(data))
    if missing:
        raise _model_error(path, f"lacks {', '.join(missing)} (not an SMPL-X .npz model?)")
    vertex_count = None
    for key, expected in _REQUIRED_KEYS.items():
        array = data[key]
        if vertex_count is None and key == "v_template":
            vertex_count = array.shape[0]
        wanted = tuple(vertex_count if d == "V" else d for d in expected)
        if array.ndim != len(wanted) or any(w is not None and w != a for w, a in zip(wanted, array.shape)):
            raise _model_error(path, f"{key} has shape {array.shape}, expected {wanted}")
        if not np.issubdtype(array.dtype, np.number):
            raise _model_error(path, f"{key} is not numeric")
    if vertex_count != SMPLX_NUM_VERTICES:
        raise _model_error(path, f"has {vertex_count} vertices, SMPL-X has {SMPLX_NUM_VERTICES}")
    return path, {key: data[key] for key in _REQUIRED_KEYS}


def check_smplx_file(model_path: str | Path | None) -> Path:
    """Check that ``model_path`` is a safe, readable SMPL-X model file with every key and shape
    the loader needs; return it as a Path. Raises BodyModelError (one line naming the file)."""
    return read_smplx_model(model_path)[0]


def _smplx_layer(arrays: dict[str, np.ndarray], num_betas: int):
    """The ``smplx`` package's SMPLXLayer built from arrays this engine has already read
    safely. The package opens model files itself, with ``allow_pickle=True`` and without a way
    to pass arrays to SMPLX's constructor, so it gets a private temporary ``.npz`` that this
    engine writes from those numeric arrays only (no object can be in it), deleted at once."""
    import smplx

    with tempfile.TemporaryDirectory(prefix="prosepose-smplx-") as folder:
        sanitized = Path(folder) / "SMPLX_SANITIZED.npz"
        with open(sanitized, "wb") as stream:
            np.savez(stream, **arrays)
        # The smplx package prints notices on stdout, which carries the engine's JSON lines.
        with contextlib.redirect_stdout(sys.stderr):
            layer = smplx.SMPLXLayer(model_path=str(sanitized), num_betas=num_betas, dtype=torch.float64)
    return layer, getattr(smplx, "__version__", "unknown")


class SmplxBody(BodyModel):
    """SMPL-X behind the engine's body interface (see module docstring).

    model_path: the user's SMPL-X ``.npz`` (or ``.pkl``) file, read without running code from
        it (``read_smplx_model``).
    pose_correctives: add SMPL-X's pose corrective offsets (default False = pure LBS, what
        Blender's armature shows).
    num_betas: number of shape coefficients exposed (the first ones of the file's shape space).
    """

    kind = "smplx"

    def __init__(
        self,
        model_path: str | Path | None,
        pose_correctives: bool = False,
        num_betas: int = 10,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        path, arrays = read_smplx_model(model_path)
        self.model_path = path
        self.pose_correctives = pose_correctives
        self.dtype = dtype
        try:
            layer, smplx_version = _smplx_layer(arrays, num_betas)
        except BodyModelError:
            raise
        except Exception as error:  # noqa: BLE001 - any loader failure is a bad model file
            raise _model_error(path, f"the smplx loader failed ({type(error).__name__}: {error})") from None
        parents = layer.parents.tolist()
        if tuple(int(p) for p in parents) != SMPLX_PARENTS:
            raise _model_error(path, "its kinematic tree is not SMPL-X's")
        self.smplx_version = smplx_version
        self.joint_names = SMPLX_JOINT_NAMES
        self.parents = SMPLX_PARENTS
        self.num_betas = int(layer.num_betas)
        self.shape_names = tuple(f"beta{i}" for i in range(self.num_betas))
        self._tree = KinematicTree.from_parents(self.parents)

        as_dtype = dict(dtype=dtype)
        template = layer.v_template.detach()
        shapedirs = layer.shapedirs.detach()  # (V, 3, S)
        regressor = layer.J_regressor.detach()  # (J, V)
        self._joint_template = (regressor @ template).to(**as_dtype)  # (J, 3)
        self._joint_shapedirs = torch.einsum("jv,vcs->jcs", regressor, shapedirs).to(**as_dtype)
        posedirs = layer.posedirs.detach().reshape(-1, SMPLX_NUM_VERTICES, 3)  # (P, V, 3)
        self._weights = layer.lbs_weights.detach().to(**as_dtype)
        self._template = template.to(**as_dtype)
        self._shapedirs = shapedirs.permute(2, 0, 1).contiguous().to(**as_dtype)  # (S, V, 3)
        self._faces = np.asarray(layer.faces, dtype=np.int64)
        self._subsets = VertexSubsetCache(
            self._template, self._shapedirs, self._weights,
            extra=(posedirs.to(**as_dtype),) if pose_correctives else (),
        )
        self._rest_cache = RestCache()
        self._model_to_world = torch.tensor(SMPLX_MODEL_TO_WORLD, **as_dtype)

    # ------------------------------------------------------------------ static data
    @property
    def faces(self) -> np.ndarray:
        return self._faces

    @property
    def num_vertices(self) -> int:
        return SMPLX_NUM_VERTICES

    @property
    def model_to_world(self) -> np.ndarray:
        return SMPLX_MODEL_TO_WORLD.copy()

    @cached_property
    def identity_hash(self) -> str:
        digest = hashlib.sha256(b"smplx model file\n")
        with open(self.model_path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()[:32]

    def default_shape(self) -> torch.Tensor:
        return torch.zeros(self.num_betas, dtype=self.dtype)

    def skinning_weights(self) -> np.ndarray:
        return self._weights.numpy().astype(np.float32)

    # ------------------------------------------------------------------ rest data
    def _rest_state(self, betas: torch.Tensor) -> tuple:
        """(B, S) -> (B, J, 3) rest joint positions (model frame), and a per-subset rest-vertex
        cache (None when the shape is being optimised)."""
        cached = self._rest_cache.get(betas)
        if cached is not None:
            return cached
        joints = self._joint_template + torch.einsum("jcs,bs->bjc", self._joint_shapedirs, betas)
        state = (joints, {})
        self._rest_cache.put(betas, state)
        return state if self._rest_cache.get(betas) is not None else (joints, None)

    def _rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        return self._rest_state(betas)[0]

    def rest_joint_frames(self, shape: torch.Tensor) -> torch.Tensor:
        joints = self._rest_joints(shape.to(self.dtype))
        frames = torch.eye(4, dtype=self.dtype).repeat(joints.shape[0], joints.shape[1], 1, 1)
        frames[:, :, :3, 3] = joints
        return frames

    def rest_vertices(self, shape: torch.Tensor, vertex_ids: torch.Tensor | None = None) -> torch.Tensor:
        subset = self._subsets.get(vertex_ids)
        betas = shape.to(self.dtype)
        return subset.template + (betas @ subset.blendshapes).reshape(betas.shape[0], -1, 3)

    # ------------------------------------------------------------------ posing
    def forward(
        self,
        local_rotations: torch.Tensor,
        root_translation: torch.Tensor,
        shape: torch.Tensor,
        vertex_ids: torch.Tensor | None = None,
        *,
        rest_orientation_shape: torch.Tensor | None = None,  # SMPL-X rest frames are unrotated
    ) -> BodyOutput:
        betas = shape.to(self.dtype)
        rotations = local_rotations.to(self.dtype)
        batch = rotations.shape[0]
        rest_joints, per_subset = self._rest_state(betas)
        rest_rotations = torch.eye(3, dtype=self.dtype).expand(rest_joints.shape[0], len(self.parents), 3, 3)
        subset = self._subsets.get(vertex_ids)
        rest = cached_rest_vertices(
            per_subset, subset,
            lambda: subset.template + (betas @ subset.blendshapes).reshape(betas.shape[0], -1, 3),
        )
        matrix = None
        if self.pose_correctives:
            identity = torch.eye(3, dtype=self.dtype)
            pose_feature = (rotations[:, 1:] - identity).reshape(batch, -1)
            rest = rest + (pose_feature @ subset.extra[0]).reshape(batch, -1, 3)
        else:  # with pose correctives the rest vertices depend on the pose: nothing to cache
            matrix = cached_skinning_matrix(per_subset, subset, rest)
        frames, vertices = pose_and_skin(
            self._tree, cached_rest_transforms(per_subset, self._tree, rest_rotations, rest_joints),
            rotations, root_translation.to(self.dtype), rest, subset.sparse_weights, matrix,
        )
        to_world = self._model_to_world
        world_rotations = to_world @ frames[..., :3, :3]
        world_positions = frames[..., :3, 3] @ to_world.T
        return BodyOutput(
            vertices=vertices @ to_world.T,
            joints=world_positions,
            joint_frames=homogeneous(world_rotations, world_positions),
        )
