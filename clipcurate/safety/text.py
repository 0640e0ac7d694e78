"""Toxic or sexual caption text: a score in [0, 1] from a classifier bundled in a PyPI package.

In: captions.  Out: one float per caption (the ``toxic_score`` column).  The model is
alt-profanity-check's linear SVM (calibrated) over a TF-IDF of words, trained on offensive
and sexual language from Wikipedia and Twitter; it ships inside the wheel (``data/*.joblib``)
and runs on CPU, about 10^4 captions per CPU-second (docs/benchmarks.md, "Safety").  It
scores English words: other languages score low whatever they say (docs/safety.md).
"""
from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

MODEL = "alt-profanity-check"


def _require():
    try:
        import profanity_check  # noqa: F401
    except ModuleNotFoundError:
        raise ImportError("safety.toxic_text needs alt-profanity-check: pip install 'clipcurate[safety]'") from None


class ToxicScorer:
    """Loads the bundled vectorizer and model once; :meth:`scores` is vectorised per batch."""

    def __init__(self):
        _require()
        from importlib import resources

        import joblib
        data = resources.files("profanity_check") / "data"
        self._files = {name: (data / name).read_bytes() for name in ("vectorizer.joblib", "model.joblib")}
        self.vectorizer = joblib.load(data / "vectorizer.joblib")
        self.model = joblib.load(data / "model.joblib")

    def scores(self, captions: Sequence[str | None]) -> np.ndarray:
        """Probability that each caption is offensive or sexual (0 for an empty caption)."""
        if not len(captions):
            return np.zeros(0, np.float32)
        texts = [c or "" for c in captions]
        p = self.model.predict_proba(self.vectorizer.transform(texts))[:, 1]
        return np.where([bool(t.strip()) for t in texts], p, 0.0).astype(np.float32)

    def identity(self) -> dict[str, Any]:
        from importlib.metadata import version
        return {"name": MODEL, "kind": "toxic_text", "version": version("alt-profanity-check"),
                "files": {name: hashlib.sha256(b).hexdigest() for name, b in sorted(self._files.items())}}
