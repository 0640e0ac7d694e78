"""Caption filters that run before any download (stage ``"filter"``).

Pure core: :class:`CaptionFilter` -- ``check(caption) -> (status, language, score)`` and
``apply(record) -> (status, record)``.  Beam wrapper: :class:`TextFilter`.

Checks, cheapest first; the first one that fails names the status:

1. ``too_short`` / ``too_long``: characters of the stripped caption outside
   ``[min_chars, max_chars]``, then whitespace-separated words outside
   ``[min_words, max_words]`` (bounds inclusive).
2. ``junk_alt`` (if ``junk_filter``): see :func:`is_junk_alt`.
3. ``lang`` (if ``lang_backend`` is not ``"none"``): the identified language is not in
   ``languages`` (empty = any), or its score is below ``min_lang_score``.

Language identification runs last, only on captions that passed 1-2, and sets the
record's ``language`` and ``language_score`` (kept and ``lang``-rejected records).
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import apache_beam as beam

from clipcurate.filters.config import TextFilterConfig
from clipcurate.filters.langid import (BACKENDS, LanguageIdentifier, check_backend, get_identifier,
                                       normalize_code)
from clipcurate.pipelines.stage import BatchCountingDoFn, apply_stage
from clipcurate.schemas.status import OK

STAGE = "filter"
DEFAULT_LANGUAGES = ("en",)  # filter.languages=None without worldwide metadata
BATCH_SIZE = 256  # records decided together in Beam (outputs and counts do not depend on it)

# A caption ending in one of these (".jpg", ...) is a file name.
MEDIA_EXTENSIONS = frozenset({
    "jpg", "jpeg", "jpe", "jfif", "png", "gif", "webp", "bmp", "tif", "tiff", "svg", "heic", "heif",
    "avif", "ico", "raw", "cr2", "nef", "psd", "eps", "pdf", "mp4", "mov", "avi", "webm",
})

# A caption whose letter runs are all in this set says nothing about the image:
# "image", "IMG_1234", "DSC00012", "Untitled-1", "photo 3 of 12", "click to enlarge", "n/a".
JUNK_WORDS = frozenset({
    # generic nouns for an image, in a few languages
    "image", "images", "img", "imgs", "photo", "photos", "photograph", "picture", "pictures", "pic",
    "pics", "thumbnail", "thumbnails", "thumb", "screenshot", "screen", "shot", "snapshot", "scan",
    "foto", "fotos", "bild", "bilder", "imagen", "imagenes", "imagem", "immagine", "afbeelding",
    "graphic", "graphics", "file", "attachment", "media", "figure", "fig",
    # camera and app default file-name prefixes (IMG_..., DSC..., P1010001, PXL_..., WhatsApp Image ...)
    "dsc", "dscn", "dscf", "dcim", "pict", "p", "gopr", "gp", "mvimg", "pxl", "wp", "whatsapp",
    "capture", "camera",
    # placeholders
    "untitled", "unnamed", "unknown", "logo", "icon", "banner", "avatar", "placeholder", "spacer",
    "pixel", "blank", "default", "alt", "text", "null", "none", "undefined", "nan", "n", "na",
    "tbd", "todo", "test", "sample", "example", "preview", "loading",
    # page furniture around an image
    "click", "here", "view", "larger", "enlarge", "zoom", "open", "see", "more", "full", "size",
    "main", "featured", "header", "hero", "profile", "cover", "gallery", "slide", "slider", "item",
    "product", "copy", "final", "edited", "original", "new", "small", "large", "medium",
    # function words that glue the above ("a photo of", "image 3 of 12", "photo by")
    "a", "an", "the", "of", "at", "by", "for", "in", "on", "to", "and", "or", "no", "my", "this",
    # extensions left after a dot ("image.jpg" split into runs)
    *MEDIA_EXTENSIONS,
})

_URL = re.compile(r"(?:[a-z][a-z0-9+.-]*://|www\.)\S*", re.IGNORECASE)
_LETTER_RUN = re.compile(r"[^\W\d_]+")  # letters of any script; digits/underscore split runs


UNSPACED_LANGUAGES = frozenset({"zh", "ja", "th", "km", "lo", "my", "bo", "dz", "wuu", "yue"})


def unspaced_word_count(text: str) -> int:
    """Words of ``text`` when some are in an unspaced script: a whitespace token holding n letters of
    CJK, kana, Thai, Lao, Khmer, Burmese or Tibetan counts as ``max(1, ceil(n / 2))`` words."""
    from clipcurate.balancing.matching import is_unspaced_char
    n = 0
    for token in text.split():
        letters = sum(1 for ch in token if ch.isalpha() and is_unspaced_char(ch))
        n += max(1, -(-letters // 2))
    return n


def is_file_name(text: str) -> bool:
    """True when ``text`` (already stripped) ends with a media extension: ``"Fox Hat.jpg"``."""
    dot = text.rfind(".", max(0, len(text) - 6))
    return dot >= 0 and text[dot + 1:].lower() in MEDIA_EXTENSIONS


def is_junk_alt(text: str) -> bool:
    """True for alt text that is a file name, a URL, generic words only, or has no letters.

    Generic means every letter run (after removing URLs) is in :data:`JUNK_WORDS`,
    case-insensitively; so "IMG_1234", "photo", "http://x.org/a.png", "12/05/2019" and
    "Image 3 of 12" are junk, "Image 3 of Winchester ammo" is not.
    """
    text = text.strip()
    if is_file_name(text):
        return True
    if "://" in text or "www." in text.lower():
        text = _URL.sub(" ", text)
    for run in _LETTER_RUN.finditer(text):  # stops at the first non-generic word (most captions: the first)
        if run.group().lower() not in JUNK_WORDS:
            return False
    return True


def validate_config(cfg: TextFilterConfig) -> frozenset[str]:
    """Raise ValueError (with the offending values) for a bad config; return normalised languages."""
    for name in ("min_chars", "max_chars", "min_words", "max_words"):
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"filter.{name}={value!r}: expected an integer >= 0")
    if cfg.min_chars > cfg.max_chars:
        raise ValueError(f"filter.min_chars={cfg.min_chars} > filter.max_chars={cfg.max_chars}")
    if cfg.min_words > cfg.max_words:
        raise ValueError(f"filter.min_words={cfg.min_words} > filter.max_words={cfg.max_words}")
    check_backend(cfg.lang_backend)
    if not isinstance(cfg.min_lang_score, (int, float)) or not 0.0 <= cfg.min_lang_score <= 1.0:
        raise ValueError(f"filter.min_lang_score={cfg.min_lang_score!r}: expected a number in [0, 1]")
    if cfg.languages is None:  # "auto" outside a run with worldwide metadata: English only
        cfg = replace(cfg, languages=list(DEFAULT_LANGUAGES))
    if isinstance(cfg.languages, str):
        raise ValueError(f"filter.languages={cfg.languages!r}: expected a list of codes, e.g. ['en']")
    languages = frozenset(normalize_code(str(code)) for code in cfg.languages)
    if cfg.lang_backend == "none" and (languages or cfg.min_lang_score > 0):
        raise ValueError(f"filter.languages={sorted(languages)} / min_lang_score={cfg.min_lang_score} need a "
                         f"language backend; set filter.lang_backend to one of "
                         f"{', '.join(b for b in BACKENDS if b != 'none')}, or languages=[] and min_lang_score=0")
    return languages


class CaptionFilter:
    """The pure filter: one caption in, ``(status, language, score)`` out.

    ``identifier`` defaults to the process-wide instance of ``cfg.lang_backend``; pass one
    to inject a stub or a differently seeded model.  Raises ValueError for a bad config,
    including language codes the backend cannot return (listed in the message).
    """

    def __init__(self, cfg: TextFilterConfig, identifier: LanguageIdentifier | None = None):
        self.cfg = cfg
        self.languages = validate_config(cfg)
        self._detect = None
        if cfg.enabled and cfg.lang_backend != "none":
            identifier = identifier or get_identifier(cfg.lang_backend)
            unknown = self.languages - identifier.labels()
            if unknown:
                raise ValueError(f"filter.languages: {sorted(unknown)} not returned by backend "
                                 f"{cfg.lang_backend!r}; it knows {', '.join(sorted(identifier.labels()))}")
            self._detect = identifier.detect
        self._min_score = float(cfg.min_lang_score)
        # captions in scripts written without spaces ("新しくアップされたアイテム") are one
        # whitespace token: count their words by characters when such languages may be kept
        self._unspaced_words = not self.languages or bool(self.languages & UNSPACED_LANGUAGES)

    def check(self, caption: str | None) -> tuple[str, str | None, float | None]:
        """Status of ``caption`` (``"ok"`` or a drop reason) and its language/score (None if not run)."""
        status, text = self.precheck(caption)
        if status is not None:
            return status, None, None
        return self._language_status(*self._detect(text))

    def precheck(self, caption: str | None) -> tuple[str | None, str]:
        """Checks 1-2 (lengths, junk): ``(status, "")`` when one decides, else ``(None, stripped text)``.

        A ``None`` status means the caption goes on to language identification; with no
        identifier (backend ``none`` or ``enabled=False``) ``"ok"`` is returned instead.
        """
        cfg = self.cfg
        if not cfg.enabled:
            return OK, ""
        text = caption.strip() if isinstance(caption, str) else ("" if caption is None else str(caption).strip())
        n_chars = len(text)
        if n_chars < cfg.min_chars:
            return "too_short", ""
        if n_chars > cfg.max_chars:
            return "too_long", ""
        n_words = len(text.split())
        if n_words < cfg.min_words and self._unspaced_words:
            n_words = unspaced_word_count(text)
        if n_words < cfg.min_words:
            return "too_short", ""
        if n_words > cfg.max_words:
            return "too_long", ""
        if cfg.junk_filter and is_junk_alt(text):
            return "junk_alt", ""
        if self._detect is None:
            return OK, ""
        return None, text

    def _language_status(self, lang: str, score: float) -> tuple[str, str, float]:
        if (self.languages and lang not in self.languages) or score < self._min_score:
            return "lang", lang, score
        return OK, lang, score

    def check_batch(self, captions: list[str | None]) -> list[tuple[str, str | None, float | None]]:
        """``[check(c) for c in captions]``, computed checks-first then language id on the survivors
        (the language model stays hot in cache for the whole batch)."""
        pre = [self.precheck(c) for c in captions]
        todo = [text for status, text in pre if status is None]
        found = iter(self._detect_batch(todo) if todo else ())
        return [(status, None, None) if status is not None else self._language_status(*next(found))
                for status, _ in pre]

    def _detect_batch(self, texts: list[str]) -> list[tuple[str, float]]:
        detect = self._detect
        return [detect(t) for t in texts]

    def apply(self, record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """``(status, record)``; a new dict with ``language``/``language_score`` when they were set."""
        return _annotate(record, *self.check(record.get("caption")))

    def apply_batch(self, records: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        """``[apply(r) for r in records]`` via :meth:`check_batch`."""
        results = self.check_batch([r.get("caption") for r in records])
        return [_annotate(r, *res) for r, res in zip(records, results)]


def _annotate(record: dict[str, Any], status: str, lang: str | None, score: float | None):
    """``(status, record)``: a copy with ``language``/``language_score`` set when ``lang`` is not None."""
    if lang is not None:
        record = dict(record, language=lang, language_score=score)
    return status, record


class _TextFilterDoFn(BatchCountingDoFn):
    """BatchCountingDoFn around :class:`CaptionFilter`; the model is loaded once per process in setup."""

    def __init__(self, cfg: TextFilterConfig, keep_rejects: bool, batch_size: int = BATCH_SIZE):
        super().__init__(STAGE, keep_rejects, batch_size=batch_size)
        self.cfg = cfg
        self._core: CaptionFilter | None = None

    def setup(self):
        self._core = CaptionFilter(self.cfg)

    def decide(self, record):
        return self._core.apply(record)

    def decide_batch(self, records):
        return self._core.apply_batch(records)


class TextFilter(beam.PTransform):
    """Drop candidates whose caption is too short/long, junk alt text or in another language.

    In: a PCollection of candidate dicts (``caption`` read; ``language`` and
    ``language_score`` set on those that reach language identification).
    Out: ``{"kept", "counts", "rejects"}`` -- kept records; ``(("filter", key), n)``
    counts with key ``in``/``kept``/``dropped:<status>``; dropped records with ``stage``
    and ``reason`` (only when ``keep_rejects``).  With ``cfg.enabled=False`` everything
    is kept (and still counted).  Cost: 40-55k captions/s per core with the ``fast``
    backend, ~250/s with ``langdetect``.  A bad ``cfg`` raises ValueError here.
    """

    def __init__(self, cfg: TextFilterConfig, keep_rejects: bool = False):
        super().__init__()
        CaptionFilter(cfg)  # validate now (loads the model in this process once, cached)
        self.cfg = cfg
        self.keep_rejects = keep_rejects

    def expand(self, pcoll):
        return apply_stage(pcoll, "Filter", _TextFilterDoFn(self.cfg, self.keep_rejects))
