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


def synthetic_caption(i: int, real: Sequence[str], vocab: Sequence[str], seed: int,
                      dup_rate: float = 0.1) -> tuple[str, int]:
    """Caption number i of a synthetic corpus and the number of the original it copies.

    An original mixes word windows (<= 6 words) of three real captions, so originals are
    mostly distinct; with probability ``dup_rate`` caption i is instead an edited copy
    (case, punctuation or one word) of an earlier caption, which may itself be a copy:
    near-duplicate chains and clusters of several members occur, as on the web."""
    key = str(i)
    if i > 0 and seeded_int(seed, key, "dup") % 10_000 < dup_rate * 10_000:
        j = seeded_int(seed, key, "src") % i
        src, root = synthetic_caption(j, real, vocab, seed, dup_rate)
        edit = CAPTION_EDITS[seeded_int(seed, key, "edit") % 3]
        return edit_caption(src, edit, vocab, seed, key), root
    parts = []
    for k in range(3):
        words = real[seeded_int(seed, key, f"cap{k}") % len(real)].split()
        start = seeded_int(seed, key, f"start{k}") % len(words)
        parts += words[start:start + 6]
    return " ".join(parts), i
