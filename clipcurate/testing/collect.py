"""Collect PCollections into this process (FnApiRunner in process only): ``SINK[key] = list``.

Lives in an importable module so that the pickled ``keep`` refers to this ``SINK``, also
from scripts run as ``__main__``.
"""
from __future__ import annotations

SINK: dict = {}


def keep(values, key):
    """Beam Map target: store the (ToList-combined) ``values`` under ``key``."""
    SINK[key] = values
