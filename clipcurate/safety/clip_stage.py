"""Stage ``safety_clip``: the NSFW head on CLIP embeddings, after ``score``.

In: scored records; the scoring stage (given ``image_head``) already put ``nsfw_clip_score``
on each, computed from the image embedding it had anyway (no second model pass).  Out: the
stage dict; with ``safety.nsfw_clip_threshold`` a score at or above it is dropped as ``nsfw``
(without its image bytes).  Stats: ``("safety_clip", {"models": [head identity], ...})``.
"""
from __future__ import annotations

from typing import Any

import apache_beam as beam

from clipcurate.pipelines.stage import CountingDoFn, apply_stage
from clipcurate.safety.config import SafetyConfig
from clipcurate.schemas.status import OK

STAGE = "safety_clip"


class _Decide(CountingDoFn):
    def __init__(self, threshold: float | None, keep_rejects: bool):
        super().__init__(STAGE, keep_rejects)
        self.threshold = threshold

    def decide(self, rec: dict[str, Any]):
        s = rec.get("nsfw_clip_score")
        if self.threshold is not None and s is not None and s >= self.threshold:
            return "nsfw", dict(rec, image=None)
        return OK, rec


class SafetyClip(beam.PTransform):
    def __init__(self, cfg: SafetyConfig, scoring_enabled: bool, keep_rejects: bool = False):
        super().__init__()
        if not scoring_enabled:
            raise ValueError("safety.nsfw_clip_head needs the scoring stage (scoring.enabled=true): "
                             "the head reads its image embeddings")
        from clipcurate.safety.clip_head import ClipHead
        self.cfg, self.keep_rejects = cfg, keep_rejects
        self._stats = {"models": [ClipHead(cfg.nsfw_clip_head).identity()], "nsfw_clip_threshold": cfg.nsfw_clip_threshold}

    def expand(self, records):
        out = apply_stage(records, "Check", _Decide(self.cfg.nsfw_clip_threshold, self.keep_rejects))
        return {**out, "stats": records.pipeline | "Stats" >> beam.Create([(STAGE, self._stats)])}
