"""clipcurate.scoring: CLIP/DFN image-text scores with open_clip, and the score filter.

Public API: :func:`load_clip`, :func:`save_checkpoint`, :func:`read_checkpoint`
(:mod:`.model`); :class:`ClipScorer` (:mod:`.scorer`); :class:`OpenClipModelHandler`
(:mod:`.handler`); :class:`Score`, :class:`ScoreFilter`, :class:`WriteEmbeddings`
(:mod:`.transforms`).  Submodules are imported lazily so that ``clipcurate.scoring.model``
does not pull in Beam.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "load_clip": "model", "save_checkpoint": "model", "read_checkpoint": "model", "LoadedClip": "model",
    "ModelUnavailableError": "model", "describe_model": "model",
    "ClipScorer": "scorer", "BatchScores": "scorer",
    "OpenClipModelHandler": "handler",
    "Score": "transforms", "ScoreFilter": "filter", "WriteEmbeddings": "transforms",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"clipcurate.scoring.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'clipcurate.scoring' has no attribute {name!r}")
