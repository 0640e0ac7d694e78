"""Deterministic, resumable streams of (image, tokens) batches from webdataset shards.

A shard holds ``{key}.jpg`` (or png/jpeg/webp), ``{key}.txt`` (caption) and optionally
``{key}.json``.  The stream visits the shards of epoch ``e`` in an order seeded by
``(seed, e)``, shuffles samples in a buffer seeded the same way, and runs epoch after epoch
forever.  Every batch carries the raw stream position after its last sample, so a resumed
run skips exactly what was consumed (skipping reads tar members but decodes nothing).
"""
from __future__ import annotations

import glob
import io
import logging
import os
import random
from dataclasses import dataclass
from typing import Callable, Iterator

from clipcurate.extras import require_models

require_models("clipcurate training", ("torch", "webdataset"))

import braceexpand
import torch
import webdataset as wds
from PIL import Image

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


def list_shards(spec: str) -> list[str]:
    """Expand ``spec`` into a sorted list of tar paths.

    ``spec`` is a directory (its ``shards/`` subfolder if it is a run directory, else its
    ``*.tar``), a glob, a brace pattern (``data/{00000..00009}.tar``) or a comma list of these.
    Raises FileNotFoundError naming ``spec`` when nothing matches."""
    paths: list[str] = []
    for part in [p for p in spec.split(",") if p]:
        if os.path.isdir(part):
            sub = os.path.join(part, "shards")
            paths += sorted(glob.glob(os.path.join(sub if os.path.isdir(sub) else part, "*.tar")))
            continue
        for item in braceexpand.braceexpand(part):
            paths += sorted(glob.glob(item)) if any(c in item for c in "*?[") else [item]
    missing = [p for p in paths if not os.path.exists(p)]
    if not paths or missing:
        raise FileNotFoundError(f"shards {spec!r}: no tar files found" if not paths
                                else f"shards {spec!r}: missing {missing[:5]}")
    return paths


def _raw_samples(shards: list[str]) -> Iterator[dict]:
    """Samples (dicts of raw bytes keyed by extension, plus ``__key__``) of ``shards`` in order;
    samples lacking an image or a caption are skipped with a warning."""
    for url in shards:
        stream = wds.DataPipeline(wds.SimpleShardList([url]),
                                  wds.tarfile_to_samples(handler=wds.warn_and_continue))
        for sample in stream:
            if "txt" in sample and any(e in sample for e in IMAGE_EXTS):
                yield sample
            else:
                log.warning("%s: sample %s lacks an image or a caption; skipped", url, sample.get("__key__"))


def _shuffled(items: Iterator[dict], bufsize: int, rng: random.Random) -> Iterator[dict]:
    """Buffer shuffle: fill ``bufsize`` items, then emit a random one per item read."""
    buf: list[dict] = []
    for item in items:
        buf.append(item)
        if len(buf) >= bufsize:
            i = rng.randrange(len(buf))
            buf[i], buf[-1] = buf[-1], buf[i]
            yield buf.pop()
    rng.shuffle(buf)
    yield from buf


def sample_stream(shards: list[str], seed: int, shuffle_buffer: int) -> Iterator[dict]:
    """Endless raw-sample stream, epoch after epoch, each epoch ordered by ``(seed, epoch)``."""
    epoch = 0
    while True:
        rng = random.Random(f"clipcurate-train:{seed}:{epoch}")
        order = list(shards)
        rng.shuffle(order)
        n = 0
        for sample in _shuffled(_raw_samples(order), max(1, shuffle_buffer), rng):
            n += 1
            yield sample
        if n == 0:
            raise ValueError(f"shards {shards[:3]}...: no usable samples (need an image and a .txt caption)")
        epoch += 1


def decode_image(sample: dict) -> Image.Image:
    """The sample's image as an RGB PIL image (raises on undecodable bytes)."""
    data = next(sample[e] for e in IMAGE_EXTS if e in sample)
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def caption_of(sample: dict) -> str:
    return sample["txt"].decode("utf-8", errors="replace").strip()


@dataclass
class Batch:
    images: torch.Tensor   # (B, 3, H, W)
    texts: torch.Tensor    # (B, context_length) token ids
    position: int          # raw stream position after the batch's last sample


def batches(shards: list[str], preprocess: Callable, tokenizer: Callable, batch_size: int,
            seed: int, shuffle_buffer: int = 1000, start: int = 0) -> Iterator[Batch]:
    """Endless batches; the first ``start`` raw samples of the stream are skipped undecoded.
    Samples whose image does not decode are skipped with a warning (they still count in
    ``position``, so resuming stays exact)."""
    images, texts = [], []
    for pos, sample in enumerate(sample_stream(shards, seed, shuffle_buffer), start=1):
        if pos <= start:
            continue
        try:
            images.append(preprocess(decode_image(sample)))
        except Exception as e:  # noqa: BLE001 - a bad image must not end the run
            log.warning("sample %s: image does not decode (%s); skipped", sample.get("__key__"), e)
            continue
        texts.append(caption_of(sample))
        if len(images) == batch_size:
            yield Batch(torch.stack(images), tokenizer(texts), pos)
            images, texts = [], []
