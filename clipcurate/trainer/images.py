"""Labelled image sets for evaluation and frozen-encoder features.

``image_folder(root)`` reads the ImageFolder layout (``root/<class>/<image>``, classes in
sorted folder order) or a flat folder of images (no labels).  ``encode_images`` runs a
model's image tower over files in batches and returns a float32 numpy array.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Callable, Sequence

from clipcurate.extras import require_models

require_models("clipcurate training/eval", ("torch",))

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


@dataclass
class ImageSet:
    paths: list[str]
    labels: list[int] | None     # None for an unlabelled (flat) folder
    folders: list[str]           # class folder names, label order ([] when unlabelled)


def _images_in(folder: str) -> list[str]:
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(folder, f)))


def image_folder(root: str) -> ImageSet:
    """Images of ``root``: labelled by subfolder if it has subfolders, else unlabelled.
    Raises FileNotFoundError when ``root`` is missing or holds no images."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder {root!r} not found")
    subdirs = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    paths, labels = [], []
    for i, d in enumerate(subdirs):
        files = _images_in(os.path.join(root, d))
        paths += files
        labels += [i] * len(files)
    if subdirs and paths:
        return ImageSet(paths, labels, subdirs)
    paths = _images_in(root)
    if not paths:
        raise FileNotFoundError(f"image folder {root!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return ImageSet(paths, None, [])


def split_balanced(labels: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices split per class: ``round(fraction * n_class)`` (at least 1 when the class has
    2+ items) go to the second list; seeded, independent of input order within a class."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction={fraction} must be in (0, 1)")
    first, second = [], []
    for c in sorted(set(labels)):
        idx = [i for i, y in enumerate(labels) if y == c]
        random.Random(f"{seed}:{c}").shuffle(idx)
        k = max(1, round(fraction * len(idx))) if len(idx) > 1 else 0
        second += idx[:k]
        first += idx[k:]
    return sorted(first), sorted(second)


@torch.no_grad()
def encode_images(model: torch.nn.Module, preprocess: Callable, paths: Sequence[str], batch_size: int = 128,
                  device: str = "cpu", normalize: bool = True) -> np.ndarray:
    """Image-tower features of ``paths`` (N, D) float32; ``normalize`` makes rows unit length."""
    model.eval()
    out = []
    for s in range(0, len(paths), batch_size):
        ims = []
        for p in paths[s:s + batch_size]:
            with Image.open(p) as im:
                ims.append(preprocess(im.convert("RGB")))
        feats = model.encode_image(torch.stack(ims).to(device), normalize=normalize)
        out.append(feats.float().cpu().numpy())
    if not out:
        raise ValueError("encode_images: no images given")
    return np.concatenate(out)
