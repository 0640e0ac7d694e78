"""Faces: detect with a detector bundled in a PyPI package, blur each box in the stored image.

In: encoded image bytes.  Out: face boxes ``[x1, y1, x2, y2]`` normalised to [0, 1] (DataComp's
``face_bboxes``) and, for ``blur``, new image bytes with every box blurred (Gaussian, sigma a
fraction of the box's shorter side), re-encoded in the stored format.

Detectors (measured on the 18 Open Images photos in ../shared/data: 19 hand-counted faces,
docs/safety.md):

* ``nudenet``: the ``FACE_FEMALE`` / ``FACE_MALE`` boxes of NudeNet's bundled YOLOv8n
  (320 px input; AGPL-3.0).  12 of 19 faces found, no false box; misses faces under ~25 px.
* ``haar``: OpenCV's bundled ``haarcascade_frontalface_default.xml`` (Intel's BSD-style
  license).  8 of 19 found, 4 false boxes (a wall, a helmet, a fan, a lamp); frontal faces only.

Overlapping boxes of one face (one box mostly inside another) are merged into the larger.
"""
from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

Box = tuple[int, int, int, int]
_SAVE = {"jpg": ("JPEG", {"quality": 95}), "jpeg": ("JPEG", {"quality": 95}), "png": ("PNG", {}),
         "webp": ("WEBP", {"quality": 95})}


class HaarFaces:
    """OpenCV's frontal-face Haar cascade (shipped in the opencv-python-headless wheel)."""

    FILE = "haarcascade_frontalface_default.xml"

    def __init__(self, min_size: int = 24, min_neighbors: int = 5):
        try:
            import cv2
        except ModuleNotFoundError:
            raise ImportError("safety.face_detector=haar needs OpenCV: pip install 'clipcurate[safety]'") from None
        self.cv2 = cv2
        cv2.setNumThreads(1)
        self.path = cv2.data.haarcascades + self.FILE
        self.cascade = cv2.CascadeClassifier(self.path)
        if self.cascade.empty():
            raise RuntimeError(f"OpenCV could not load its bundled cascade {self.FILE}")
        self.min_size, self.min_neighbors = min_size, min_neighbors

    def boxes(self, rgb: np.ndarray) -> list[Box]:
        cv2 = self.cv2
        grey = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        found = self.cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=self.min_neighbors,
                                              minSize=(self.min_size, self.min_size))
        return [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in found]

    def identity(self) -> dict[str, Any]:
        with open(self.path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        return {"name": "opencv-haar-frontalface-default", "kind": "face_detector", "version": self.cv2.__version__,
                "file": self.FILE, "sha256": sha, "license": "Intel License Agreement (BSD-style)"}


def merge_boxes(boxes: list[Box], overlap: float = 0.5) -> list[Box]:
    """Drop every box whose area lies more than ``overlap`` inside a larger kept box; sorted."""
    def area(b):
        return max(0, b[2] - b[0]) * max(0, b[3] - b[1])

    kept: list[Box] = []
    for b in sorted(set(boxes), key=lambda b: (-area(b), b)):
        inside = False
        for k in kept:
            iw = min(b[2], k[2]) - max(b[0], k[0])
            ih = min(b[3], k[3]) - max(b[1], k[1])
            if iw > 0 and ih > 0 and iw * ih > overlap * max(area(b), 1):
                inside = True
                break
        if not inside and area(b) > 0:
            kept.append(b)
    return sorted(kept)


def normalise(boxes: list[Box], width: int, height: int) -> list[list[float]]:
    """Pixel boxes as ``[x1, y1, x2, y2]`` fractions of the image size (6 decimals)."""
    return [[round(x1 / width, 6), round(y1 / height, 6), round(x2 / width, 6), round(y2 / height, 6)]
            for x1, y1, x2, y2 in boxes]


def blur_boxes(img: Image.Image, boxes: list[Box], strength: float) -> Image.Image:
    """A copy of ``img`` with each box replaced by its Gaussian blur (sigma = strength x shorter side / 2)."""
    out = img.copy()
    for x1, y1, x2, y2 in boxes:
        side = min(x2 - x1, y2 - y1)
        if side <= 0:
            continue
        region = out.crop((x1, y1, x2, y2))
        out.paste(region.filter(ImageFilter.GaussianBlur(max(2.0, strength * side / 2))), (x1, y1))
    return out


def encode(img: Image.Image, fmt: str | None) -> tuple[bytes, str]:
    """Bytes of ``img`` in the stored format (jpg / png / webp; anything else as JPEG)."""
    key = (fmt or "jpg").lower()
    name, opts = _SAVE.get(key, _SAVE["jpg"])
    buf = io.BytesIO()
    img.save(buf, name, **opts)
    return buf.getvalue(), key if key in _SAVE else "jpg"
