"""Beam wiring for scoring: :class:`Score` and :class:`WriteEmbeddings` (:class:`ScoreFilter`
lives in :mod:`.filter`, free of torch, and is re-exported here).

``Score`` tokenises captions in its own step (:class:`TokenizeCaptions`, CPU, before the
model), runs :class:`~clipcurate.scoring.handler.OpenClipModelHandler` through
``RunInference`` and counts stage ``score`` (undecodable images -> ``score_error``).
``ScoreFilter`` applies a threshold or a global top fraction (stage ``score_filter``,
status ``low_score``) and reports the cut it chose as stats ``score_cut``.
"""
from __future__ import annotations

from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.ml.inference.base import RunInference

from clipcurate.pipelines.stage import CountingDoFn, apply_stage
from clipcurate.schemas.uid import shard_of
from clipcurate.sinks.files import join, write_parquet_atomic
from clipcurate.scoring.config import ScoringConfig
from clipcurate.scoring.filter import ScoreFilter  # noqa: F401  (re-export)
from clipcurate.scoring.handler import OpenClipModelHandler
from clipcurate.scoring.model import describe_model
from clipcurate.scoring.tokens import load_caption_tokenizer

EMBEDDINGS = "embeddings"


# -- Score ----------------------------------------------------------------------------------

TOKEN_FIELDS = ("tokens", "caption_truncated")


class _TokenizeBatch(beam.DoFn):
    """list of records -> each record + ``tokens`` (int32 [context]) + ``caption_truncated``."""

    def __init__(self, model: str, checkpoint: str | None, backend: str):
        self.model, self.checkpoint, self.backend = model, checkpoint, backend
        self.tokenizer = None

    def setup(self):
        self.tokenizer = load_caption_tokenizer(self.model, self.checkpoint, self.backend)

    def process(self, records):
        ids, truncated = self.tokenizer([r.get("caption") or "" for r in records])
        for r, row, t in zip(records, ids, truncated):
            yield dict(r, tokens=row, caption_truncated=t)


class TokenizeCaptions(beam.PTransform):
    """Records -> the same records with ``tokens`` (the model tokenizer's ids, int32
    [context]) and ``caption_truncated``, computed in batches of up to ``batch_size`` on
    the CPU before RunInference, so the model step only stacks ids.  Beam fuses it with
    the model step unless something breaks fusion; each worker process (Dataflow runs one
    per vCPU) tokenises its own elements.  :class:`Score` removes the fields again."""

    def __init__(self, cfg: ScoringConfig, batch_size: int = 256):
        super().__init__()
        self.cfg, self.batch_size = cfg, batch_size

    def expand(self, pcoll):
        cfg = self.cfg
        return (pcoll | "Batch" >> beam.BatchElements(min_batch_size=1, max_batch_size=self.batch_size)
                | "Tokenize" >> beam.ParDo(_TokenizeBatch(cfg.model, cfg.checkpoint, cfg.tokenizer_backend)))


class _SplitEmbeddings(beam.DoFn):
    """PredictionResult -> itself without embeddings; (uid, image_emb, text_emb) on a side output.
    With ``image_head`` (clipcurate.safety.clip_head checkpoint), the head's score of the image
    embedding stays in the inference as ``nsfw_clip_score``."""

    def __init__(self, image_head: str | None = None):
        self.image_head, self.head = image_head, None

    def setup(self):
        if self.image_head:
            from clipcurate.safety.clip_head import ClipHead
            self.head = ClipHead(self.image_head)

    def process(self, pred):
        inf = pred.inference
        if inf.get("image_emb") is not None:
            yield beam.pvalue.TaggedOutput(EMBEDDINGS, (pred.example["uid"], inf["image_emb"], inf["text_emb"]))
        out = {k: v for k, v in inf.items() if not k.endswith("_emb")}
        if self.head is not None and inf.get("image_emb") is not None:
            out["nsfw_clip_score"] = float(self.head(np.asarray([inf["image_emb"]], np.float32))[0])
        yield pred._replace(inference=out)


class _ScoreDecide(CountingDoFn):
    """PredictionResult -> ("ok", record + clip_score) or ("score_error", record + error)."""

    def __init__(self, keep_rejects: bool):
        super().__init__("score", keep_rejects)

    def decide(self, pred):
        record, inf = pred.example, pred.inference
        record = {k: v for k, v in record.items() if k not in TOKEN_FIELDS}
        if inf["error"] is not None:
            return "score_error", dict(record, error=inf["error"])
        if "nsfw_clip_score" in inf:
            record["nsfw_clip_score"] = inf["nsfw_clip_score"]
        return "ok", dict(record, clip_score=inf["clip_score"])


def _model_stats(driver_identity: dict[str, Any]):
    """Combine worker model ids (weights sha256) into the one ``scoring_model`` stat."""
    def finish(shas):
        shas = sorted(set(shas))
        if len(shas) > 1:
            raise RuntimeError(f"scoring workers loaded different weights for {driver_identity['model']}: "
                               f"{shas}; a random_init model must be built with the same seed everywhere")
        return "scoring_model", dict(driver_identity, weights_sha256=shas[0] if shas else None)
    return finish


def _truncated_stat(n):
    return "score_captions_truncated", int(n)


class Score(beam.PTransform):
    """Records (uid, caption, image bytes, ...) -> records with ``clip_score`` (stage ``score``).

    Returns {"kept", "counts", "rejects", "stats"}; stats are ``scoring_model`` (model name,
    tag, checkpoint and its sha256, weights sha256 seen by the workers) and
    ``score_captions_truncated`` (captions longer than the model's context, truncated as
    its tokenizer does).  With ``cfg.embeddings_dir`` set, L2-normalised embeddings are also
    written there as Parquet shards (:class:`WriteEmbeddings`).  With ``image_head`` (a
    clipcurate.safety.clip_head checkpoint), each record also gets that head's
    ``nsfw_clip_score`` of its image embedding (stage ``safety_clip`` applies the threshold).
    """

    def __init__(self, cfg: ScoringConfig, seed: int = 0, keep_rejects: bool = False, image_head: str | None = None):
        super().__init__()
        self.cfg, self.seed, self.keep_rejects, self.image_head = cfg, seed, keep_rejects, image_head
        self.identity = describe_model(cfg.model, cfg.pretrained, cfg.checkpoint, cfg.random_init, seed)

    def expand(self, pcoll):
        cfg = self.cfg
        handler = OpenClipModelHandler(cfg, self.seed, with_embeddings=cfg.embeddings_dir is not None
                                       or bool(self.image_head))
        preds = (pcoll | "TokenizeCaptions" >> TokenizeCaptions(cfg)
                 | "RunInference" >> RunInference(handler))
        split = preds | "SplitEmbeddings" >> beam.ParDo(_SplitEmbeddings(self.image_head)).with_outputs(
            EMBEDDINGS, main="preds")
        out = apply_stage(split.preds, "Decide", _ScoreDecide(self.keep_rejects))
        model = (split.preds | "ModelId" >> beam.Map(lambda p: p.model_id)
                 | "Distinct" >> beam.Distinct()
                 | "ModelIds" >> beam.combiners.ToList())
        model_stat = model | "ModelStat" >> beam.Map(_model_stats(self.identity))
        truncated = (split.preds | "Truncated" >> beam.Map(lambda p: int(p.inference["truncated"]))
                     | "SumTruncated" >> beam.CombineGlobally(sum) | "TruncStat" >> beam.Map(_truncated_stat))
        out["stats"] = (model_stat, truncated) | "Stats" >> beam.Flatten()
        if cfg.embeddings_dir is not None:
            _ = split[EMBEDDINGS] | "WriteEmbeddings" >> WriteEmbeddings(cfg.embeddings_dir, cfg.embedding_shards)
        return out


# -- embeddings -----------------------------------------------------------------------------

class WriteEmbeddings(beam.PTransform):
    """(uid, image_emb, text_emb) -> ``{dir}/{shard:05d}.parquet`` with columns uid,
    image_embedding, text_embedding (fixed-size float32 lists), rows sorted by uid,
    shard = shard_of(uid, num_shards); each file written to a temp name then renamed."""

    def __init__(self, directory: str, num_shards: int):
        super().__init__()
        self.directory, self.num_shards = directory, num_shards

    def expand(self, pcoll):
        n, d = self.num_shards, self.directory
        return (pcoll | "Key" >> beam.Map(lambda e: (shard_of(e[0], n), e))
                | "Group" >> beam.GroupByKey()
                | "Write" >> beam.MapTuple(lambda shard, rows: write_embedding_shard(d, shard, list(rows))))


def write_embedding_shard(directory: str, shard: int, rows: list) -> str:
    """Write one embeddings shard (see :class:`WriteEmbeddings`); return its path."""
    rows = sorted(rows, key=lambda r: r[0])
    dim_i, dim_t = len(rows[0][1]), len(rows[0][2])
    img = np.asarray([r[1] for r in rows], dtype=np.float32).reshape(-1)
    txt = np.asarray([r[2] for r in rows], dtype=np.float32).reshape(-1)
    table = pa.table({
        "uid": pa.array([r[0] for r in rows], pa.string()),
        "image_embedding": pa.FixedSizeListArray.from_arrays(pa.array(img), dim_i),
        "text_embedding": pa.FixedSizeListArray.from_arrays(pa.array(txt), dim_t),
    })
    path = join(directory, f"{shard:05d}.parquet")
    write_parquet_atomic(path, table)
    return path
