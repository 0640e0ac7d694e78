"""Decontamination: drop training samples whose image is a near-duplicate of an eval image.

In: records after download (``image`` bytes, maybe ``phash``) and ``cfg.eval_sets``: image
folders, globs or webdataset ``.tar`` files, each optionally named ``name=path``.  Out: the
stage dict ``{"kept", "counts", "rejects", "stats"}``; matches are dropped as
``eval_contamination`` (rejects carry ``eval_set`` and ``eval_image``), and the stats pair
``("decontamination", {eval_set: {"images": n, "removed": m}})`` goes into the manifest.

Match: pHash Hamming distance <= ``cfg.eval_phash_distance`` (found through the same
multi-index bands as near-dedupe), and, when an embedding model is configured
(``eval_embedding_model`` + ``eval_embedding_threshold`` > 0), image-embedding cosine
similarity >= the threshold.  The eval index is built once per worker process
(``apache_beam.utils.shared.Shared``), not per bundle.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.utils.shared import Shared

from clipcurate.dedupe import lsh
from clipcurate.dedupe.config import DedupeConfig
from clipcurate.dedupe.phash import iter_eval_images, phash_bytes, to_int
from clipcurate.pipelines.stage import CountingDoFn, apply_stage
from clipcurate.schemas.status import OK

Embedder = Callable[[Sequence[bytes]], np.ndarray]   # image bytes -> (n, d) L2-normalised


def parse_eval_set(spec: str) -> tuple[str, str]:
    """``"name=path"`` -> (name, path); a bare path is its own name."""
    name, sep, path = spec.partition("=")
    if sep and "/" not in name and name:
        return name, path
    return spec, spec


@dataclass
class EvalIndex:
    """pHash multi-index (and optional embedding matrix) of all eval images."""
    distance: int
    bands: int
    images: dict[str, int] = field(default_factory=dict)          # eval set -> image count
    buckets: dict[bytes, list[tuple[int, str, str]]] = field(default_factory=dict)
    emb: np.ndarray | None = None                                  # (n, d)
    emb_meta: list[tuple[str, str]] = field(default_factory=list)  # (set, image) per row

    def add(self, eval_set: str, name: str, data: bytes) -> None:
        h = phash_bytes(data)
        self.images[eval_set] = self.images.get(eval_set, 0) + 1
        if h is None:
            return
        hv = to_int(h)
        for k in lsh.phash_keys(hv, self.distance, self.bands):
            self.buckets.setdefault(k, []).append((hv, eval_set, name))

    def match_phash(self, phash_hex: str | None) -> tuple[str, str] | None:
        """(eval set, eval image) of the closest eval image within the distance, or None."""
        if not phash_hex:
            return None
        hv = to_int(phash_hex)
        best = None
        for k in lsh.phash_keys(hv, self.distance, self.bands):
            for ev, s, n in self.buckets.get(k, ()):
                d = lsh.hamming(hv, ev)
                if d <= self.distance and (best is None or (d, s, n) < best):
                    best = (d, s, n)
        return None if best is None else (best[1], best[2])

    def match_embedding(self, emb: np.ndarray, threshold: float) -> tuple[str, str] | None:
        if self.emb is None or not len(self.emb):
            return None
        sims = self.emb @ emb
        i = int(np.argmax(sims))
        return self.emb_meta[i] if sims[i] >= threshold else None


def build_index(eval_sets: Iterable[str], distance: int, bands: int = 0,
                embedder: Embedder | None = None, batch: int = 256) -> EvalIndex:
    """Read every eval image once; index its pHash (and embedding when ``embedder`` is given)."""
    index = EvalIndex(distance, bands)
    embs, pending = [], []
    for spec in eval_sets:
        name, path = parse_eval_set(spec)
        index.images.setdefault(name, 0)
        for img_name, data in iter_eval_images(path):
            index.add(name, img_name, data)
            if embedder is not None:
                pending.append((name, img_name, data))
                if len(pending) >= batch:
                    embs.append(embedder([d for _, _, d in pending]))
                    index.emb_meta += [(s, n) for s, n, _ in pending]
                    pending = []
    if embedder is not None:
        if pending:
            embs.append(embedder([d for _, _, d in pending]))
            index.emb_meta += [(s, n) for s, n, _ in pending]
        index.emb = np.concatenate(embs) if embs else np.zeros((0, 1), np.float32)
    return index


def open_clip_embedder(model_name: str, pretrained: str) -> Embedder:
    """Image embedder from an open_clip model and a local checkpoint (offline)."""
    from clipcurate.extras import require_models
    require_models("clipcurate decontamination by embedding", ("torch", "open_clip"))
    import open_clip
    import torch
    from PIL import Image
    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained or None)
    model.eval()

    def embed(images: Sequence[bytes]) -> np.ndarray:
        x = torch.stack([preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in images])
        with torch.no_grad():
            f = model.encode_image(x)
        return torch.nn.functional.normalize(f, dim=-1).numpy()

    return embed


class _Decide(CountingDoFn):
    def __init__(self, cfg: DedupeConfig, shared: Shared, keep_rejects: bool):
        super().__init__("decontam", keep_rejects)
        self.cfg, self.shared = cfg, shared
        self.index: EvalIndex | None = None
        self.embedder: Embedder | None = None

    def setup(self):
        c = self.cfg
        use_emb = bool(c.eval_embedding_model) and c.eval_embedding_threshold > 0
        self.embedder = open_clip_embedder(c.eval_embedding_model, c.eval_embedding_pretrained) if use_emb else None
        key = repr((sorted(c.eval_sets), c.eval_phash_distance, c.phash_bands, c.eval_embedding_model,
                    c.eval_embedding_pretrained))
        self.index = self.shared.acquire(
            lambda: _Holder(build_index(c.eval_sets, c.eval_phash_distance, c.phash_bands, self.embedder)),
            tag=key).index

    def decide(self, record: dict[str, Any]):
        rec = record if record.get("phash") else dict(record, phash=phash_bytes(record.get("image")))
        hit = self.index.match_phash(rec.get("phash"))
        if hit is None and self.embedder is not None and rec.get("image"):
            try:
                emb = self.embedder([rec["image"]])[0]
                hit = self.index.match_embedding(emb, self.cfg.eval_embedding_threshold)
            except Exception:  # noqa: BLE001 - an unreadable image cannot match by embedding
                hit = None
        if hit is None:
            return OK, rec
        return "eval_contamination", dict(rec, eval_set=hit[0], eval_image=hit[1])


class _Holder:
    """Weak-referenceable wrapper (Shared needs one) around the index."""

    def __init__(self, index: EvalIndex):
        self.index = index


def count_eval_images(spec: str) -> tuple[str, int]:
    name, path = parse_eval_set(spec)
    return name, sum(1 for _ in iter_eval_images(path, read=False))


def _decontam_stats(element):
    name, grouped = element
    images = list(grouped["images"])
    return name, {"images": images[0] if images else 0, "removed": sum(grouped["removed"])}


class Decontaminate(beam.PTransform):
    """Stage ``decontam``: drop records whose image matches an eval-set image
    (status ``eval_contamination``); stats ``("decontamination", {set: {images, removed}})``."""

    def __init__(self, cfg: DedupeConfig, keep_rejects: bool = False):
        super().__init__()
        for spec in cfg.eval_sets:  # fail at construction, naming the spec
            _, path = parse_eval_set(spec)
            if next(iter_eval_images(path, read=False), None) is None:
                raise FileNotFoundError(f"eval set {spec!r} holds no image files")
        self.cfg, self.keep_rejects = cfg, keep_rejects

    def expand(self, records):
        # rejects are needed for the per-set counts; they go out only when keep_rejects is set
        out = apply_stage(records, "Match", _Decide(self.cfg, Shared(), keep_rejects=True))
        removed = out["rejects"] | "RemovedBySet" >> beam.Map(lambda r: (r["eval_set"], 1))
        images = (records.pipeline
                  | "EvalSets" >> beam.Create(sorted(self.cfg.eval_sets))
                  | "CountImages" >> beam.Map(count_eval_images))
        stats = ({"images": images, "removed": removed}
                 | "JoinStats" >> beam.CoGroupByKey()
                 | "PerSet" >> beam.Map(_decontam_stats)
                 | "ToDict" >> beam.combiners.ToDict()
                 | "Stat" >> beam.Map(lambda d: ("decontamination", dict(sorted(d.items())))))
        rejects = out["rejects"] if self.keep_rejects else (
            out["rejects"] | "NoRejects" >> beam.Filter(lambda _: False))
        return {"kept": out["kept"], "counts": out["counts"], "rejects": rejects, "stats": stats}
