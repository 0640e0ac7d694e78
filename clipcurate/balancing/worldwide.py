"""Worldwide curation (MetaCLIP 2): route a caption's identified language to a metadata language.

The text filter sets ``record["language"]`` (fastText lid.176 codes, normalised to the
primary subtag, ``"und"`` when unknown).  :class:`Router` maps it to a language of the
worldwide metadata: itself if the metadata has it, else through :data:`DEFAULT_LID_MAP`
plus the user's ``balance.lang_map``, else the ``"other"`` list (``unknown_language="other"``
and the metadata has one), else ``None`` (the caller drops the record as
``no_metadata_language``).
"""
from __future__ import annotations

OTHER = "other"
UNKNOWN_LANGUAGE_CHOICES = ("other", "drop")

# lid.176 code -> metadata codes to try, in order, when the metadata lacks the code itself:
# Chinese varieties in Han script -> zh; Norwegian (lid.176: no, nn) <-> wordfreq's nb;
# Serbian/Croatian/Bosnian <-> wordfreq's sh; Tagalog -> Filipino.
DEFAULT_LID_MAP = {"yue": ("zh",), "wuu": ("zh",), "gan": ("zh",), "no": ("nb",), "nn": ("nb", "no"),
                   "nb": ("no",), "sr": ("sh",), "hr": ("sh",), "bs": ("sh",), "sh": ("sr", "hr"),
                   "tl": ("fil",), "fil": ("tl",)}


def parse_lang_map(items: list[str]) -> dict[str, str]:
    """``["yue=zh", ...]`` -> ``{"yue": "zh"}``; ValueError naming a malformed item."""
    out: dict[str, str] = {}
    for item in items:
        lid, sep, meta = str(item).partition("=")
        lid, meta = lid.strip().lower(), meta.strip().lower()
        if not sep or not lid or not meta:
            raise ValueError(f"balance.lang_map item {item!r}: expected 'lid=metadata', e.g. 'yue=zh'")
        out[lid] = meta
    return out


class Router:
    """``route(lid_code) -> metadata language or None``; results are cached per code."""

    def __init__(self, languages, unknown_language: str = OTHER, lang_map: dict[str, str] | None = None):
        if unknown_language not in UNKNOWN_LANGUAGE_CHOICES:
            raise ValueError(f"balance.unknown_language={unknown_language!r}: choose from "
                             f"{', '.join(UNKNOWN_LANGUAGE_CHOICES)}")
        self.languages = frozenset(languages)
        self.map = {lid: next((m for m in ms if m in self.languages), None) for lid, ms in DEFAULT_LID_MAP.items()}
        self.map = {lid: m for lid, m in self.map.items() if m is not None}
        self.map.update(lang_map or {})
        bad = sorted({m for m in (lang_map or {}).values() if m not in self.languages})
        if bad:
            raise ValueError(f"balance.lang_map targets {bad} are not languages of the metadata "
                             f"({', '.join(sorted(self.languages))})")
        self.fallback = OTHER if unknown_language == OTHER and OTHER in self.languages else None
        self._cache: dict[str | None, str | None] = {}

    def route(self, lang: str | None) -> str | None:
        try:
            return self._cache[lang]
        except KeyError:
            pass
        code = lang if isinstance(lang, str) else ""
        if code in self.languages and code != OTHER:
            out = code
        elif code in self.map:
            out = self.map[code]
        else:
            out = self.fallback
        self._cache[lang] = out
        return out


def resolve_filter_languages(filter_cfg, balance_cfg):
    """``filter.languages=None`` ("auto") -> ``[]`` (keep every language) when the run balances with
    worldwide metadata, else ``["en"]``; an explicit list is returned unchanged."""
    from dataclasses import replace

    from clipcurate.balancing.entries import is_worldwide_file
    if filter_cfg.languages is not None:
        return filter_cfg
    worldwide = bool(balance_cfg.enabled and balance_cfg.metadata and is_worldwide_file(balance_cfg.metadata))
    return replace(filter_cfg, languages=[] if worldwide else ["en"])
