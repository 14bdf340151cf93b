"""ProsePose engine: body models, regions, LMM contacts, losses and the optimizer.

Runs in its own Python process (``python -m engine``); it never imports Blender."""

__version__ = "0.1.0"
