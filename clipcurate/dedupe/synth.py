"""Labelled near-duplicates made from real data (tests and benchmarks).

Caption edits: case change, punctuation change, one word replaced / deleted / inserted.
Image edits: half-size resize, JPEG re-encode at quality 25, a 5%-of-area centre crop, +10%
brightness.  Every choice comes from ``seeded_int(seed, key, purpose)``, so a set is the
same on every run.
"""
from __future__ import annotations

import io
from typing import Sequence

from PIL import Image, ImageEnhance

from clipcurate.dedupe.minhash import normalize_caption
from clipcurate.schemas.uid import seeded_int

CAPTION_EDITS = ("case", "punct", "word")
IMAGE_EDITS = ("resize", "jpeg", "crop", "bright")


def edit_caption(caption: str, edit: str, vocab: Sequence[str], seed: int, key: str) -> str:
    """One caption edit; ``word`` replaces, deletes or inserts one word (drawn from ``vocab``)."""
    if edit == "case":
        return caption.upper() if seeded_int(seed, key, "case") % 2 else caption.lower()
    if edit == "punct":
        marks = ["!", ".", " -", ",", "?"]
        return caption.rstrip(".!?") + marks[seeded_int(seed, key, "punct") % len(marks)]
    words = caption.split()
    i = seeded_int(seed, key, "pos") % len(words)
    new = vocab[seeded_int(seed, key, "word") % len(vocab)]
    kind = seeded_int(seed, key, "kind") % 3
    if kind == 0:
        words[i] = new
    elif kind == 1 and len(words) > 1:
        del words[i]
    else:
        words.insert(i, new)
    return " ".join(words)


def encode_jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def edit_image(img: Image.Image, edit: str) -> bytes:
    """One image edit, returned as JPEG bytes."""
    w, h = img.size
    if edit == "resize":
        return encode_jpeg(img.resize((max(1, w // 2), max(1, h // 2)), Image.BICUBIC))
    if edit == "jpeg":
        return encode_jpeg(img, 25)
    if edit == "crop":   # 5% of the area: 2.5% of each side's length, split over both ends
        dx, dy = round(w * 0.0125), round(h * 0.0125)
        return encode_jpeg(img.crop((dx, dy, w - dx, h - dy)))
    if edit == "bright":
        return encode_jpeg(ImageEnhance.Brightness(img).enhance(1.1))
    raise ValueError(f"image edit {edit!r}; choose from {', '.join(IMAGE_EDITS)}")


def vocabulary(captions: Sequence[str]) -> list[str]:
    """Sorted distinct words of the captions (the pool for one-word edits)."""
    return sorted({w for c in captions for w in normalize_caption(c).split() if w.isalpha() and len(w) > 2})
