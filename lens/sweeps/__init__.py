"""Adaptive sweeps: steps chosen at run time from the judged steps before (above run and
metrics, which it composes)."""
