"""Image checks and re-encoding: ``process_image(bytes, cfg) -> ImageResult`` (Pillow).

Order (cheap and safe first): magic bytes -> header dimensions (pixel limit, refused
before any decode: bombs) -> minimum side and aspect ratio -> decode (first frame of an
animation, JPEGs decoded at a reduced DCT scale when the target is smaller) -> EXIF
orientation -> RGB (CMYK, palette, alpha on white, 16-bit scaled to 8) -> resize
(img2dataset's modes) -> encode.  Same bytes + same config => same output bytes.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from clipcurate.download.config import DownloadConfig

# (prefix, offset, Pillow format name); WebP is RIFF....WEBP
_MAGIC = [(b"\xff\xd8\xff", 0, "JPEG"), (b"\x89PNG\r\n\x1a\n", 0, "PNG"), (b"GIF87a", 0, "GIF"),
          (b"GIF89a", 0, "GIF"), (b"BM", 0, "BMP"), (b"II*\x00", 0, "TIFF"), (b"MM\x00*", 0, "TIFF"),
          (b"WEBP", 8, "WEBP")]
_EXT = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff", "WEBP": "webp"}
_SAVE = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
_SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations that rotate by 90 degrees


@dataclass
class ImageResult:
    """``status`` "ok" with the stored ``image`` bytes and sizes, or a drop reason + ``error``."""
    status: str
    error: str | None = None
    image: bytes | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    original_width: int | None = None
    original_height: int | None = None
    image_format: str | None = None


def sniff(data: bytes) -> str | None:
    """Pillow format name from the magic bytes (JPEG, PNG, GIF, BMP, TIFF, WEBP) or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for prefix, offset, fmt in _MAGIC:
        if offset == 0 and data.startswith(prefix):
            return fmt
    return None


def process_image(data: bytes, cfg: DownloadConfig) -> ImageResult:
    """Check and re-encode one image per ``cfg``; never raises on bad input."""
    fmt = sniff(data or b"")
    if fmt is None:
        return ImageResult("not_image", f"no image signature (starts {bytes(data[:8])!r})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError as e:
        return ImageResult("bomb", str(e))
    except Exception as e:  # noqa: BLE001 - any parser failure on hostile input is a decode error
        return ImageResult("decode_error", f"{fmt} header: {type(e).__name__}: {e}")
    checked = _check_header(im, cfg)
    if checked.status != "ok":
        return checked
    try:
        return _decode_encode(im, data, fmt, cfg, checked)
    except Image.DecompressionBombError as e:
        return ImageResult("bomb", str(e))
    except Exception as e:  # noqa: BLE001 - truncated / corrupt data
        return ImageResult("decode_error", f"{type(e).__name__}: {e}")


def _check_header(im: Image.Image, cfg: DownloadConfig) -> ImageResult:
    """Pixel limit, minimum side and aspect ratio from the header (displayed orientation)."""
    w, h = im.size
    if w <= 0 or h <= 0:
        return ImageResult("decode_error", f"bad size {w}x{h}")
    if w * h > cfg.max_pixels:
        return ImageResult("bomb", f"{w}x{h} = {w * h} pixels above max_pixels={cfg.max_pixels}")
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - broken EXIF: ignore orientation
        orientation = 1
    if orientation in _SWAPS_AXES:
        w, h = h, w
    res = ImageResult("ok", original_width=w, original_height=h)
    if min(w, h) < cfg.min_image_size:
        return ImageResult("too_small", f"{w}x{h}: shorter side below {cfg.min_image_size}",
                           original_width=w, original_height=h)
    if cfg.max_aspect_ratio > 0 and max(w, h) / min(w, h) > cfg.max_aspect_ratio:
        return ImageResult("bad_aspect", f"{w}x{h}: aspect {max(w, h) / min(w, h):.2f} above {cfg.max_aspect_ratio}",
                           original_width=w, original_height=h)
    return res


def _decode_encode(im: Image.Image, data: bytes, fmt: str, cfg: DownloadConfig, res: ImageResult) -> ImageResult:
    if cfg.keep_original:
        im.load()  # still decode: truncated or corrupt files are refused
        return _stored(res, data, _EXT[fmt], res.original_width, res.original_height)
    if fmt == "JPEG" and cfg.resize_mode != "no":
        im.draft("RGB", (cfg.image_size, cfg.image_size))  # DCT scaling; never below the target
    im.load()
    im = to_rgb(ImageOps.exif_transpose(im))
    im = resize(im, cfg)
    buf = io.BytesIO()
    q = cfg.encode_quality
    opts = {"jpg": {"quality": q}, "png": {"compress_level": min(q, 9)}, "webp": {"quality": q}}
    im.save(buf, _SAVE[cfg.encode_format], **opts[cfg.encode_format])
    return _stored(res, buf.getvalue(), cfg.encode_format, im.width, im.height)


def _stored(res: ImageResult, blob: bytes, ext: str, w: int, h: int) -> ImageResult:
    res.image, res.sha256, res.image_format = blob, hashlib.sha256(blob).hexdigest(), ext
    res.width, res.height = w, h
    return res


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB: alpha composited on white, 16/32-bit scaled down, CMYK/palette converted."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        scale = 257.0 if im.mode.startswith("I;16") or (im.mode == "I" and arr.max(initial=0) > 255) else 1.0
        im = Image.fromarray(np.clip(np.rint(arr / scale), 0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info or im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def target_size(w: int, h: int, cfg: DownloadConfig) -> tuple[int, int]:
    """Size after resizing (before crop/pad) per img2dataset's modes."""
    s = cfg.image_size
    if cfg.resize_mode == "no":
        return w, h
    side = min(w, h) if cfg.resize_mode in ("keep_ratio", "center_crop") else max(w, h)
    if side == s or (cfg.resize_only_if_bigger and side <= s):
        return w, h
    scale = s / side
    return max(1, round(w * scale)), max(1, round(h * scale))


def resize(im: Image.Image, cfg: DownloadConfig) -> Image.Image:
    """Resize per ``cfg.resize_mode``; center_crop crops, border pads with white to a square."""
    w, h = target_size(im.width, im.height, cfg)
    if (w, h) != im.size:  # like img2dataset's defaults: area (BOX) down, lanczos up
        up = w > im.width or h > im.height
        im = im.resize((w, h), Image.Resampling.LANCZOS if up else Image.Resampling.BOX)
    s = cfg.image_size
    if cfg.resize_mode == "center_crop" and (im.width > s or im.height > s):
        left, top = (im.width - min(s, im.width)) // 2, (im.height - min(s, im.height)) // 2
        im = im.crop((left, top, left + min(s, im.width), top + min(s, im.height)))
    elif cfg.resize_mode == "border" and (im.width < s or im.height < s):
        canvas = Image.new("RGB", (max(s, im.width), max(s, im.height)), (255, 255, 255))
        canvas.paste(im, ((canvas.width - im.width) // 2, (canvas.height - im.height) // 2))
        im = canvas
    return im
