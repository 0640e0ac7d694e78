"""Image bytes -> model input tensors, on the CPU (exact) or batched on a CUDA device.

* :func:`decode_cpu` opens bytes with Pillow and applies the model's own val
  transform (``LoadedClip.preprocess``): the reference path, bit-for-bit what open_clip
  does.  Failures come back as an error string, never an exception.
* :class:`GpuPreprocess` decodes JPEG bytes with ``torchvision.io.decode_jpeg`` on the
  device (nvjpeg, one batched call) and then resizes (shortest side, bicubic, antialias),
  centre-crops and normalises with the numbers read from the model's transform.
  Bytes it cannot decode (PNG, WebP, CMYK JPEG, ...) fall back to :func:`decode_cpu`.
  Its pixels differ slightly from Pillow's resampling (scores within ~1e-2, see
  docs/scoring.md); use ``decode="cpu"`` where exact agreement with open_clip matters.
"""
from __future__ import annotations

import io
import re
import logging
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

from clipcurate.extras import require_models

require_models("clipcurate scoring", ("torch", "torchvision"))

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms as T

log = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8\xff"


def decode_cpu(data: bytes | None, preprocess: Callable) -> tuple[torch.Tensor | None, str | None]:
    """Decode ``data`` with Pillow and apply ``preprocess``; return (CHW float tensor, None)
    or (None, error message) for empty, undecodable or zero-size images."""
    if not data:
        return None, "empty image bytes"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            img.load()
        if img.width == 0 or img.height == 0:
            return None, f"zero-size image {img.width}x{img.height}"
        return preprocess(img), None
    except Exception as e:  # Pillow raises many types for bad bytes
        return None, re.sub(r" at 0x[0-9a-fA-F]+", "", f"decode: {type(e).__name__}: {e}")[:300]


@dataclass(frozen=True)
class PreprocessSpec:
    """The numbers of an open_clip val transform: Resize(size) -> CenterCrop(crop) -> Normalize."""
    size: int
    crop: tuple[int, int]
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def preprocess_spec(preprocess: Callable) -> PreprocessSpec | None:
    """Read a :class:`PreprocessSpec` from an open_clip ``Compose``; None if it has another shape
    (e.g. resize_mode 'squash' or 'longest'), in which case the GPU path is not offered."""
    steps = list(getattr(preprocess, "transforms", []))
    resize = [t for t in steps if isinstance(t, T.Resize)]
    crop = [t for t in steps if isinstance(t, T.CenterCrop)]
    norm = [t for t in steps if isinstance(t, T.Normalize)]
    known = (T.Resize, T.CenterCrop, T.Normalize)
    other = [t for t in steps if not isinstance(t, known)
             and type(t).__name__ not in ("MaybeConvertMode", "MaybeToTensor", "ToTensor", "function")]
    if len(resize) != 1 or len(crop) != 1 or len(norm) != 1 or other:
        return None
    size = resize[0].size
    if isinstance(size, (list, tuple)):
        if len(size) != 1:
            return None
        size = size[0]
    interp = resize[0].interpolation.value
    if interp not in ("bicubic", "bilinear"):
        return None
    return PreprocessSpec(size=int(size), crop=tuple(int(c) for c in crop[0].size), interpolation=interp,
                          mean=tuple(float(m) for m in norm[0].mean), std=tuple(float(s) for s in norm[0].std))


class GpuPreprocess:
    """Batched JPEG decode + resize/crop/normalise on ``device``; CPU fallback per image.

    ``__call__(images)`` returns (pixels [m, 3, H, W] float32 on ``device``, ok indices into
    ``images``, {index: error} for images that neither path could decode) and counts
    ``gpu_decoded`` / ``cpu_fallback`` / ``resize_calls`` in :attr:`stats`.  The whole batch
    is decoded by one ``decode_jpeg(list, device=...)`` call (batched nvjpeg); decoded
    images of the same height x width (the usual case for bytes stored by our downloader,
    which resizes to a fixed size) are resized, cropped and normalised by one call per shape.
    """

    def __init__(self, spec: PreprocessSpec, cpu_preprocess: Callable, device: str):
        self.spec, self.cpu_preprocess, self.device = spec, cpu_preprocess, torch.device(device)
        self.mean = torch.tensor(spec.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.std, device=self.device).view(1, 3, 1, 1)
        self.stats = {"gpu_decoded": 0, "cpu_fallback": 0, "resize_calls": 0}

    def decode(self, images: Sequence[bytes | None]) -> dict[int, torch.Tensor]:
        """{index: uint8 CHW tensor on the device} for the JPEGs nvjpeg could decode."""
        from torchvision.io import ImageReadMode, decode_jpeg
        jpeg_idx = [i for i, b in enumerate(images) if b and b[:3] == JPEG_MAGIC]
        if not jpeg_idx:
            return {}
        datas = [torch.frombuffer(bytearray(images[i]), dtype=torch.uint8) for i in jpeg_idx]
        try:
            outs = decode_jpeg(datas, mode=ImageReadMode.RGB, device=self.device)
            decoded = dict(zip(jpeg_idx, outs))
        except RuntimeError:  # one bad image fails the batch: retry one by one
            decoded = {}
            for i, d in zip(jpeg_idx, datas):
                try:
                    decoded[i] = decode_jpeg(d, mode=ImageReadMode.RGB, device=self.device)
                except RuntimeError:
                    pass
        return {i: t for i, t in decoded.items() if t.shape[-1] > 0 and t.shape[-2] > 0}

    def __call__(self, images: Sequence[bytes | None]):
        decoded = self.decode(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, t in decoded.items():
            groups.setdefault(tuple(t.shape[-2:]), []).append(i)
        out = torch.empty(len(images), 3, *self.spec.crop, device=self.device)
        for idx in groups.values():  # one resize + normalise per distinct input shape
            x = self._resize_crop(torch.stack([decoded[i] for i in idx]))
            x = x.clamp_(0, 255).div_(255.0).sub_(self.mean).div_(self.std)
            out[torch.tensor(idx, device=self.device)] = x
        self.stats["gpu_decoded"] += len(decoded)
        self.stats["resize_calls"] += len(groups)
        errors: dict[int, str] = {}
        for i in range(len(images)):
            if i not in decoded:
                t, err = decode_cpu(images[i], self.cpu_preprocess)
                if err:
                    errors[i] = err
                else:
                    out[i] = t.to(self.device, non_blocking=True)
                    self.stats["cpu_fallback"] += 1
        ok = [i for i in range(len(images)) if i not in errors]
        return (out if len(ok) == len(images) else out[ok]), ok, errors

    def _resize_crop(self, img: torch.Tensor) -> torch.Tensor:
        """uint8 [n, 3, h, w] on device -> float [n, 3, crop_h, crop_w] in 0..255
        (Resize shortest side, CenterCrop)."""
        h, w = img.shape[-2:]
        s = self.spec.size
        nh, nw = (s, max(1, int(s * w / h))) if h <= w else (max(1, int(s * h / w)), s)
        x = img.float()
        if (nh, nw) != (h, w):
            x = F.interpolate(x, size=(nh, nw), mode=self.spec.interpolation, antialias=True,
                              align_corners=False)
        ch, cw = self.spec.crop
        top, left = int(round((nh - ch) / 2.0)), int(round((nw - cw) / 2.0))
        x = x[..., max(top, 0):max(top, 0) + ch, max(left, 0):max(left, 0) + cw]
        if x.shape[-2:] != (ch, cw):  # image smaller than the crop: pad like CenterCrop
            x = F.pad(x, (0, cw - x.shape[-1], 0, ch - x.shape[-2]))
        return x
