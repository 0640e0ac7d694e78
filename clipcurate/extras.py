"""Optional dependency groups (pyproject extras) and the one-line hint when one is missing.

``models`` (torch, torchvision, open_clip, tokenizers, webdataset, scikit-learn) is needed only
where scoring, decontamination by embedding or training run; text-first and download jobs run
without it.  ``dataflow`` is Beam's GCP client (the Dataflow launcher and ``gs://`` paths).
"""
from __future__ import annotations

import importlib

MODELS = ("torch", "torchvision", "open_clip")


def require_models(feature: str, modules: tuple[str, ...] = MODELS) -> None:
    """Import ``modules``; when one is missing raise ImportError with a one-line install hint."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            missing = e.name or name
            raise ImportError(f"{feature} needs the model stack ({missing} is not installed): "
                              f"pip install 'clipcurate[models]'") from None
