"""Batch refinement on Ray (``python -m engine batch``, docs/batch.md): the manifest, the
workers, the driver and the report. Imports refine; refine never imports it."""
