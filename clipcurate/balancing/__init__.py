"""MetaCLIP curation: metadata builder, substring matching, per-entry balancing.

Public API: :class:`~clipcurate.balancing.transforms.MetaClipCurate` (Beam),
:class:`~clipcurate.balancing.matching.Matcher` / ``match_reference`` (pure core),
:func:`~clipcurate.balancing.entries.load_metadata`, and the ``build-metadata`` CLI
(:mod:`clipcurate.balancing.cli`).  Heavy modules are imported lazily.
"""
from __future__ import annotations

__all__ = ["MetaClipCurate", "Matcher", "match_reference", "load_metadata", "MetadataError"]


def __getattr__(name):
    if name == "MetaClipCurate":
        from clipcurate.balancing.transforms import MetaClipCurate
        return MetaClipCurate
    if name in ("Matcher", "match_reference"):
        from clipcurate.balancing import matching
        return getattr(matching, name)
    if name in ("load_metadata", "MetadataError"):
        from clipcurate.balancing import entries
        return getattr(entries, name)
    raise AttributeError(f"module 'clipcurate.balancing' has no attribute {name!r}")
