"""Body models behind one interface (``engine.body.base.BodyModel``).

``load_body("anny")`` gives the built-in body; ``load_body("smplx", model_path=...)`` the
SMPL-X body from the user's own licensed model file."""

from __future__ import annotations

from pathlib import Path

from engine.body.base import BodyModel, BodyOutput
from engine.errors import BodyModelError

BODY_KINDS: tuple[str, ...] = ("anny", "smplx")


def load_body(kind: str, model_path: str | Path | None = None, pose_correctives: bool = False) -> BodyModel:
    """Load a body model.

    kind: "anny" (built in) or "smplx" (needs ``model_path``, an SMPL-X ``.npz`` file).
    pose_correctives: SMPL-X only; see ``engine.body.smplx_body.SmplxBody``.
    """
    if kind == "anny":
        if model_path is not None:
            raise BodyModelError("the anny body is built in: it takes no model file (drop --model-file)")
        from engine.body.anny_body import AnnyBody

        return AnnyBody()
    if kind == "smplx":
        from engine.body.smplx_body import SmplxBody

        return SmplxBody(model_path, pose_correctives=pose_correctives)
    raise BodyModelError(f"unknown body model {kind!r}; choose one of: {', '.join(BODY_KINDS)}")


__all__ = ["BODY_KINDS", "BodyModel", "BodyModelError", "BodyOutput", "load_body"]
