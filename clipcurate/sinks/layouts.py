"""Output layouts: the shard files other tools expect (``sink.layout``).

* ``clipcurate`` (default): ``shards/{n:05d}.tar`` keyed by uid, ``parquet/{n:05d}.parquet``.
* ``img2dataset``: what ``img2dataset --output_format webdataset`` writes, in ``shards/``:
  ``{n:05d}.tar`` with img2dataset keys (``{shard}{index}`` zero-padded: ``key[:5]`` is the
  shard), ``{key}.jpg/.txt/.json``, the json and ``{n:05d}.parquet`` holding img2dataset's
  columns (``key url caption status error_message width height original_width
  original_height exif sha256``, plus ``uid`` as a saved additional column), and
  ``{n:05d}_stats.json`` (``count``, ``successes``, ``failed_to_download``, ...).
* ``datacomp``: the shards DataComp's ``download_upstream.py`` makes with img2dataset
  (8-digit shard names, ``uid`` in every json, ``_stats.json`` with ``successes``: what
  ``resharder.py`` reads), plus ``metadata/{n:08d}.parquet`` with DataComp's metadata columns
  (``uid url text original_width original_height clip_b32_similarity_score
  clip_l14_similarity_score face_bboxes sha256``) that its filtering baselines read.

Every layout also writes our ``parquet/`` (the report reads it).  Only kept samples are in a
shard, so every status is ``success``; dropped rows are in ``rejects/`` with their reason.
Times in ``_stats.json`` are 0 (no wall-clock time in output bytes).
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

import pyarrow as pa

LAYOUTS = ("clipcurate", "datacomp", "img2dataset")
# digits of a shard number in file names and keys (img2dataset's oom_shard_count)
SHARD_DIGITS = {"clipcurate": 5, "img2dataset": 5, "datacomp": 8}

# img2dataset's per-shard Parquet: saved additional columns, caption, url, then its own columns
IMG2DATASET_SCHEMA = pa.schema([
    pa.field("uid", pa.string()),
    pa.field("caption", pa.string()),
    pa.field("url", pa.string()),
    pa.field("key", pa.string()),
    pa.field("status", pa.string()),
    pa.field("error_message", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("original_width", pa.int32()),
    pa.field("original_height", pa.int32()),
    pa.field("exif", pa.string()),
    pa.field("sha256", pa.string()),
])

_DATACOMP_SCORES = {"b32": "clip_b32_similarity_score", "l14": "clip_l14_similarity_score"}


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise ValueError(f"sink.layout={layout!r}: choose from {', '.join(LAYOUTS)}")
    return layout


def shard_name(shard: int, layout: str) -> str:
    return f"{shard:0{SHARD_DIGITS[layout]}d}"


def score_column(model: str | None) -> str:
    """DataComp's name for a CLIP score column: ``clip_{arch}_similarity_score`` with arch from
    an open_clip ViT name (``ViT-B-32`` -> ``b32``, ``ViT-L-14-quickgelu`` -> ``l14``), else the
    model name lower-cased with non-alphanumerics as ``_`` (``clipcurate-tiny`` ->
    ``clip_clipcurate_tiny_similarity_score``)."""
    name = (model or "unknown").split("/")[-1]
    m = re.fullmatch(r"ViT-([A-Za-z]+)-(\d+)(?:-.*)?", name)
    arch = f"{m.group(1).lower()}{m.group(2)}" if m else re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return f"clip_{arch}_similarity_score"


def datacomp_schema(score_col: str) -> pa.Schema:
    """DataComp's metadata columns and types; a score column of another model goes after the two
    DataComp ones."""
    fields = [pa.field("uid", pa.string()), pa.field("url", pa.string()), pa.field("text", pa.string()),
              pa.field("original_width", pa.int64()), pa.field("original_height", pa.int64()),
              pa.field(_DATACOMP_SCORES["b32"], pa.float32()), pa.field(_DATACOMP_SCORES["l14"], pa.float32())]
    if score_col not in _DATACOMP_SCORES.values():
        fields.append(pa.field(score_col, pa.float32()))
    fields += [pa.field("face_bboxes", pa.list_(pa.list_(pa.float64()))), pa.field("sha256", pa.string())]
    return pa.schema(fields)


def datacomp_row(rec: dict[str, Any], score_col: str) -> dict[str, Any]:
    """A record as a DataComp metadata row: caption -> ``text``, ``clip_score`` -> ``score_col``.
    ``face_bboxes`` is null unless a stage detected faces (null = not looked for)."""
    return {"uid": rec["uid"], "url": rec["url"], "text": rec["caption"],
            "original_width": rec.get("original_width"), "original_height": rec.get("original_height"),
            score_col: rec.get("clip_score"), "face_bboxes": rec.get("face_bboxes"), "sha256": rec.get("sha256")}


def sample_digits(max_rows: int, samples_per_shard: int) -> int:
    """Digits of the in-shard index in an img2dataset key: ``ceil(log10(samples_per_shard))``
    as img2dataset computes it, widened when a shard holds more rows (shard = uid mod N varies)."""
    return max(1, math.ceil(math.log10(max(1, samples_per_shard))), len(str(max(0, max_rows - 1))))


def img2dataset_key(shard: int, index: int, digits: int, layout: str) -> str:
    """img2dataset's ``compute_key``: ``shard * 10**digits + index``, zero-padded to
    ``digits + shard digits``."""
    if index >= 10 ** digits:
        raise ValueError(f"index {index} does not fit in {digits} digits")
    return f"{shard * 10 ** digits + index:0{digits + SHARD_DIGITS[layout]}d}"


def img2dataset_meta(rec: dict[str, Any], key: str) -> dict[str, Any]:
    """The sample's img2dataset metadata (its ``.json`` and per-shard Parquet row), in
    img2dataset's column order.  ``exif`` is null: images are stored as downloaded or re-encoded
    by our resize, and we do not extract EXIF."""
    return {"uid": rec["uid"], "caption": rec["caption"], "url": rec["url"], "key": key, "status": "success",
            "error_message": None, "width": rec.get("width"), "height": rec.get("height"),
            "original_width": rec.get("original_width"), "original_height": rec.get("original_height"),
            "exif": None, "sha256": rec.get("sha256")}


def img2dataset_json(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, indent=4, ensure_ascii=False).encode("utf-8")


def stats_json(rows: int) -> bytes:
    """img2dataset's ``{shard}_stats.json`` for a shard of ``rows`` kept samples (times are 0)."""
    stats = {"count": rows, "successes": rows, "failed_to_download": 0, "failed_to_resize": 0,
             "duration": 0.0, "start_time": 0.0, "end_time": 0.0, "status_dict": {"success": rows} if rows else {}}
    return (json.dumps(stats, indent=4) + "\n").encode("utf-8")
