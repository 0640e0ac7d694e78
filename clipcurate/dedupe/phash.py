"""Perceptual hashes of images (pHash, 64 bits, via ``imagehash``).

In: encoded image bytes (or a PIL image).  Out: the hash as a 16-digit hex string (the
``phash`` record field) or as an ``int`` for distances.  Undecodable bytes give ``None``.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterator

import imagehash
from PIL import Image


def phash_image(img: Image.Image) -> str:
    """pHash (hash_size 8, 64 bits) of a PIL image as 16 hex digits."""
    return str(imagehash.phash(img.convert("L")))


def phash_bytes(data: bytes | None) -> str | None:
    """pHash of encoded image bytes, or None when they cannot be decoded."""
    if not data:
        return None
    try:
        img = Image.open(io.BytesIO(data))
        img.draft("L", (128, 128))  # JPEG: decode grey at reduced scale; pHash works on 32x32
        return str(imagehash.phash(img if img.mode == "L" else img.convert("L")))
    except Exception:  # noqa: BLE001 - any decoder failure is "not hashable"
        return None


def to_int(hex_hash: str) -> int:
    return int(hex_hash, 16)


_IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def iter_eval_images(spec: str, read: bool = True) -> Iterator[tuple[str, bytes | None]]:
    """``(name, bytes)`` of every image in an eval set: a folder (recursive), a glob, or
    webdataset ``.tar`` files (members with an image extension).  ``read=False`` only
    lists names (bytes None)."""
    import glob
    import tarfile
    p = Path(spec)
    paths = sorted(str(x) for x in p.rglob("*") if x.is_file()) if p.is_dir() else sorted(glob.glob(spec))
    if not paths:
        raise FileNotFoundError(f"eval set {spec!r} matches no files")
    for path in paths:
        if path.endswith(".tar"):
            with tarfile.open(path) as tar:
                for m in tar:
                    if m.isfile() and Path(m.name).suffix.lower() in _IMAGE_EXT:
                        yield f"{path}:{m.name}", tar.extractfile(m).read() if read else None
        elif Path(path).suffix.lower() in _IMAGE_EXT:
            yield path, Path(path).read_bytes() if read else None
