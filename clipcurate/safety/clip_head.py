"""A pluggable NSFW head on CLIP image embeddings (a checkpoint path, as LAION's detector is).

In: L2-normalised image embeddings, (n, d) float32, from the scoring stage's model (the head
must have been trained on that model's embeddings).  Out: one score in [0, 1] per row (the
``nsfw_clip_score`` column).

Checkpoint format: a NumPy ``.npz`` holding an MLP, ``W0, b0, W1, b1, ...`` (``W{i}`` of
shape (in, out), ReLU between layers, a sigmoid on the single output), optionally ``mean`` and
``var`` (d,) to standardise the input first (``(x - mean) / sqrt(var)``, as a Keras
Normalization layer does).  Any linear probe or small MLP fits; a Keras or PyTorch head is
converted by saving its dense layers' weights in that order (docs/safety.md).
"""
from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np

from clipcurate.safety.lists import base_name
from clipcurate.sinks.files import read_bytes


class ClipHead:
    def __init__(self, path: str):
        try:
            data = read_bytes(path)
        except Exception as e:  # noqa: BLE001 - local or Beam filesystem errors
            raise FileNotFoundError(f"safety.nsfw_clip_head {path!r}: cannot read it ({e})") from None
        self.path, self.sha256 = path, hashlib.sha256(data).hexdigest()
        try:
            arrays = dict(np.load(io.BytesIO(data), allow_pickle=False))
        except Exception as e:  # noqa: BLE001 - not an npz
            raise ValueError(f"safety.nsfw_clip_head {path!r}: not a NumPy .npz file ({e})") from None
        self.layers = []
        while f"W{len(self.layers)}" in arrays:
            i = len(self.layers)
            w = np.asarray(arrays[f"W{i}"], np.float32)
            b = np.asarray(arrays.get(f"b{i}", np.zeros(w.shape[1])), np.float32)
            if w.ndim != 2 or b.shape != (w.shape[1],) or (self.layers and self.layers[-1][0].shape[1] != w.shape[0]):
                raise ValueError(f"safety.nsfw_clip_head {path!r}: layer {i} has W {w.shape}, b {b.shape}")
            self.layers.append((w, b))
        if not self.layers or self.layers[-1][0].shape[1] != 1:
            raise ValueError(f"safety.nsfw_clip_head {path!r}: needs W0, b0, ... ending in one output "
                             f"(found keys {sorted(arrays)})")
        self.dim = self.layers[0][0].shape[0]
        self.mean = np.asarray(arrays["mean"], np.float32) if "mean" in arrays else None
        self.std = np.sqrt(np.asarray(arrays["var"], np.float32)) + 1e-7 if "var" in arrays else None

    def __call__(self, emb: np.ndarray) -> np.ndarray:
        x = np.asarray(emb, np.float32).reshape(-1, np.shape(emb)[-1])
        if x.shape[1] != self.dim:
            raise ValueError(f"safety.nsfw_clip_head {self.path!r} takes {self.dim}-d embeddings; "
                             f"the scoring model gives {x.shape[1]}-d")
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0)
        return (1 / (1 + np.exp(-x[:, 0]))).astype(np.float32)

    def identity(self) -> dict[str, Any]:
        return {"name": "nsfw_clip_head", "kind": "nsfw_clip_head", "file": base_name(self.path),
                "sha256": self.sha256, "layers": [list(w.shape) for w, _ in self.layers]}
