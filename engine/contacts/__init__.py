"""Parsed LMM samples -> constraints: aggregation, summary, the contacts file."""
