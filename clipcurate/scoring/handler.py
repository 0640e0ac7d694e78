"""An open_clip ModelHandler for ``apache_beam.ml.inference.RunInference``.

Input elements are records (dicts with ``image`` bytes and ``caption``, and usually the
``tokens`` / ``caption_truncated`` fields that :class:`~.transforms.TokenizeCaptions` adds
upstream); each comes back as ``PredictionResult(example=record, inference=ScoreResult
dict, model_id=weights sha256)``.  The model is loaded once per worker process by
RunInference (``load_model``), batched between ``min_batch_size`` and ``max_batch_size``;
decoding happens inside ``run_inference`` so that the GPU can decode a whole batch at once.
Records without ``tokens`` are tokenised here.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Sequence

from clipcurate.extras import require_models

require_models("clipcurate scoring", ("torch",))

import numpy as np
import torch
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from clipcurate.scoring.config import ScoringConfig
from clipcurate.scoring.model import load_clip, resolve_device
from clipcurate.scoring.scorer import ClipScorer

log = logging.getLogger(__name__)


class OpenClipModelHandler(ModelHandler[dict, PredictionResult, ClipScorer]):
    """RunInference handler: records in, ``PredictionResult`` with
    ``inference = {"clip_score": float | None, "error": str | None, "truncated": bool,
    "image_emb": list | None, "text_emb": list | None}`` out.

    ``cfg.device``: 'auto' | 'cpu' | 'cuda' | 'GPU' (as Beam's PyTorch handlers spell it);
    without CUDA the model runs on the CPU and says so in the log.
    """

    def __init__(self, cfg: ScoringConfig, seed: int = 0, with_embeddings: bool = False):
        super().__init__(min_batch_size=cfg.min_batch_size, max_batch_size=cfg.max_batch_size)
        self.cfg, self.seed, self.with_embeddings = cfg, seed, with_embeddings

    def load_model(self) -> ClipScorer:
        cfg = self.cfg
        device = resolve_device(cfg.device)
        loaded = load_clip(cfg.model, pretrained=cfg.pretrained, checkpoint=cfg.checkpoint,
                           random_init=cfg.random_init, device=device, seed=self.seed)
        log.info("clipcurate scoring: loaded %s on %s (%s, decode=%s, weights sha256 %s)", cfg.model,
                 device, cfg.precision if device != "cpu" else "fp32", cfg.decode,
                 loaded.identity["weights_sha256"][:12])
        if device == "cpu":
            torch.set_num_threads(max(1, torch.get_num_threads()))
        return ClipScorer(loaded, device=device, precision=cfg.precision, decode=cfg.decode,
                          decode_threads=cfg.decode_threads, chunk_size=cfg.chunk_size,
                          tokenizer_backend=cfg.tokenizer_backend, overlap=cfg.overlap)

    def run_inference(self, batch: Sequence[dict], model: ClipScorer,
                      inference_args: dict[str, Any] | None = None) -> Iterable[PredictionResult]:
        res = model.score([r.get("image") for r in batch], [r.get("caption") or "" for r in batch],
                          with_embeddings=self.with_embeddings, tokens=batch_tokens(batch, model))
        model_id = model.loaded.identity["weights_sha256"]
        for i, record in enumerate(batch):
            ok = res.errors[i] is None
            inference = {
                "clip_score": float(res.scores[i]) if ok else None,
                "error": res.errors[i],
                "truncated": bool(res.truncated[i]),
                "image_emb": res.image_emb[i].tolist() if ok and res.image_emb is not None else None,
                "text_emb": res.text_emb[i].tolist() if ok and res.text_emb is not None else None,
            }
            yield PredictionResult(record, inference, model_id)

    def get_num_bytes(self, batch: Sequence[dict]) -> int:
        return sum(len(r.get("image") or b"") + len(r.get("caption") or "") for r in batch)

    def get_metrics_namespace(self) -> str:
        return "clipcurate_scoring"


def batch_tokens(batch: Sequence[dict], model: ClipScorer):
    """(ids [n, context], truncated) from the records' ``tokens`` fields, tokenising in place
    those that lack them; raises ValueError if upstream ids do not fit the model's context."""
    missing = [i for i, r in enumerate(batch) if r.get("tokens") is None]
    if len(missing) == len(batch):
        return None
    ctx = model.captions.context_length
    ids = np.zeros((len(batch), ctx), np.int32)
    truncated = [bool(r.get("caption_truncated")) for r in batch]
    for i, r in enumerate(batch):
        if r.get("tokens") is not None:
            row = np.asarray(r["tokens"])
            if row.shape != (ctx,):
                raise ValueError(f"record {r.get('uid')}: tokens of shape {row.shape}, model context is {ctx}")
            ids[i] = row
    if missing:
        more, more_trunc = model.captions([batch[i].get("caption") or "" for i in missing])
        ids[missing] = more
        for i, t in zip(missing, more_trunc):
            truncated[i] = t
    return ids, truncated
