"""Deterministic webdataset tar + Parquet shard writers.

What goes in: final sample records (dicts; ``image`` bytes for tars).  What comes out:
``shards/{n:05d}.tar`` (``{uid}.{ext}``, ``{uid}.txt``, ``{uid}.json``) and
``parquet/{n:05d}.parquet`` (the FINAL schema, zstd, no image bytes), plus one info dict
per shard (names, row count, sha256).

Shard of a sample = ``int(uid) mod N`` with ``N = ceil(total / samples_per_shard)``;
rows sorted by uid inside a shard; tar members have fixed mtime/owner/mode.  So the
bytes depend only on the set of samples, never on runner, worker count or order.
``layout`` (``clipcurate``, ``img2dataset``, ``datacomp``) names and keys the tars and adds
the side files other tools read: see ``clipcurate.sinks.layouts``.
"""
from __future__ import annotations

import io
import json
import math
import tarfile
from typing import Any, Iterable

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from clipcurate.schemas.records import FINAL, to_table
from clipcurate.schemas.uid import shard_of
from clipcurate.sinks import layouts as lay
from clipcurate.sinks.files import join, write_atomic

_EXT = {"jpg": "jpg", "jpeg": "jpg", "png": "png", "webp": "webp"}
# metadata written into {uid}.json: everything but the bytes
_JSON_EXCLUDE = {"image"}


def num_shards(total: int, samples_per_shard: int) -> int:
    if samples_per_shard <= 0:
        raise ValueError(f"samples_per_shard must be > 0, got {samples_per_shard}")
    return max(1, math.ceil(total / samples_per_shard))


def sample_json(record: dict[str, Any]) -> bytes:
    meta = {k: v for k, v in record.items() if k not in _JSON_EXCLUDE and v is not None}
    return json.dumps(meta, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _order_key(rec: dict[str, Any]) -> tuple:
    """Sort key: uid first; ties (rejects of repeated rows share a uid) broken by lineage
    and reason, so the order never depends on element order."""
    return (rec["uid"], str(rec.get("source") or ""), int(rec.get("offset") or 0),
            str(rec.get("stage") or ""), str(rec.get("reason") or ""), str(rec.get("url") or ""))


def _ext(rec: dict[str, Any]) -> str:
    return _EXT.get((rec.get("image_format") or "jpg").lower(), "jpg")


def _tar(members: Iterable[tuple[str, bytes]]) -> bytes:
    """A tar of ``(name, data)`` in order, with fixed mtime/owner/mode: byte-stable."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_bytes(records: Iterable[dict[str, Any]]) -> bytes:
    """A webdataset tar of ``records`` (sorted by uid), byte-stable."""
    return _tar(m for rec in sorted(records, key=_order_key)
                for m in ((f"{rec['uid']}.{_ext(rec)}", rec["image"]),
                          (f"{rec['uid']}.txt", rec["caption"].encode("utf-8")),
                          (f"{rec['uid']}.json", sample_json(rec))))


def _table_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def write_layout_files(shard: int, records: list[dict[str, Any]], output: str, layout: str, digits: int,
                       score_model: str | None = None) -> dict[str, Any]:
    """The ``img2dataset``/``datacomp`` files of one shard (tar keyed as img2dataset keys it, its
    Parquet and ``_stats.json`` beside it; DataComp metadata for ``datacomp``); their info."""
    name = lay.shard_name(shard, layout)
    rows = sorted(records, key=_order_key)
    metas, members = [], []
    for i, rec in enumerate(rows):
        meta = lay.img2dataset_meta(rec, lay.img2dataset_key(shard, i, digits, layout))
        metas.append(meta)
        key = meta["key"]
        members += [(f"{key}.{_ext(rec)}", rec["image"]), (f"{key}.json", lay.img2dataset_json(meta)),
                    (f"{key}.txt", rec["caption"].encode("utf-8"))]
    info: dict[str, Any] = {"tar": f"shards/{name}.tar"}
    info["tar_sha256"] = write_atomic(join(output, "shards", f"{name}.tar"), _tar(members))
    info["shard_parquet"] = f"shards/{name}.parquet"
    info["shard_parquet_sha256"] = write_atomic(join(output, "shards", f"{name}.parquet"),
                                                _table_bytes(to_table(metas, lay.IMG2DATASET_SCHEMA)))
    info["stats"] = f"shards/{name}_stats.json"
    info["stats_sha256"] = write_atomic(join(output, "shards", f"{name}_stats.json"), lay.stats_json(len(rows)))
    if layout == "datacomp":
        col = lay.score_column(score_model)
        table = to_table([lay.datacomp_row(r, col) for r in rows], lay.datacomp_schema(col))
        info["metadata"] = f"metadata/{name}.parquet"
        info["metadata_sha256"] = write_atomic(join(output, "metadata", f"{name}.parquet"), _table_bytes(table))
    return info


def parquet_bytes(records: Iterable[dict[str, Any]], schema: pa.Schema = FINAL) -> bytes:
    """Parquet (zstd) of ``records`` sorted by uid, in ``schema``'s columns."""
    return _table_bytes(to_table(sorted(records, key=_order_key), schema))


def write_shard(shard: int, records: list[dict[str, Any]], output: str, *, tar: bool, parquet: bool,
                schema: pa.Schema = FINAL, parquet_dir: str = "parquet", layout: str = "clipcurate",
                digits: int = 1, score_model: str | None = None) -> dict[str, Any]:
    """Write one shard's files atomically; return its info dict for the manifest.
    ``digits``: of the in-shard index in img2dataset keys (``layouts.sample_digits``)."""
    name = f"{shard:05d}"
    info: dict[str, Any] = {"shard": shard, "rows": len(records)}
    if tar and layout != "clipcurate":
        info.update(write_layout_files(shard, records, output, layout, digits, score_model))
    elif tar:
        info["tar"] = f"shards/{name}.tar"
        info["tar_sha256"] = write_atomic(join(output, "shards", f"{name}.tar"), tar_bytes(records))
    if parquet:
        info["parquet"] = f"{parquet_dir}/{name}.parquet"
        info["parquet_sha256"] = write_atomic(join(output, parquet_dir, f"{name}.parquet"),
                                              parquet_bytes(records, schema))
    return info


class WriteShards(beam.PTransform):
    """Records -> shard files; outputs one info dict per shard written.

    ``samples_per_shard`` sets N from the global count (a singleton side input), so the
    shard count is a function of the data alone.  ``tar=False`` writes Parquet only
    (used for rejects and ``--until``), under ``parquet_dir``.  ``layout`` applies to the tars;
    ``score_model`` names DataComp's score column (``layouts.score_column``).
    """

    def __init__(self, output: str, samples_per_shard: int, *, tar: bool = True, parquet: bool = True,
                 schema: pa.Schema = FINAL, parquet_dir: str = "parquet", layout: str = "clipcurate",
                 score_model: str | None = None):
        super().__init__()
        num_shards(0, samples_per_shard)  # validates
        lay.check_layout(layout)
        if not (tar or parquet):
            raise ValueError("WriteShards: at least one of tar/parquet must be enabled")
        self.output, self.samples_per_shard = output, samples_per_shard
        self.tar, self.parquet, self.schema, self.parquet_dir = tar, parquet, schema, parquet_dir
        self.layout, self.score_model = layout, score_model

    def expand(self, records):
        total = records | "Count" >> beam.combiners.Count.Globally()
        n = total | "NumShards" >> beam.Map(num_shards, self.samples_per_shard)
        spec = (self.output, self.tar, self.parquet, self.schema, self.parquet_dir, self.layout, self.score_model)
        keyed = records | "KeyByShard" >> beam.Map(lambda r, n: (shard_of(r["uid"], n), r),
                                                   n=beam.pvalue.AsSingleton(n))
        side = {}
        if self.tar and self.layout != "clipcurate":  # img2dataset keys: index digits from the largest shard
            side["digits"] = beam.pvalue.AsSingleton(
                keyed | "ShardRows" >> beam.combiners.Count.PerKey() | "Rows" >> beam.Values()
                | "MaxRows" >> beam.CombineGlobally(_max_or_zero)
                | "KeyDigits" >> beam.Map(lay.sample_digits, self.samples_per_shard))
        return (keyed
                | "GroupByShard" >> beam.GroupByKey()
                | "Write" >> beam.Map(_write_group, spec, **side))


def _max_or_zero(values) -> int:
    return max(values, default=0)


def _write_group(item, spec, digits: int = 1):
    shard, records = item
    output, tar, parquet, schema, parquet_dir, layout, score_model = spec
    return write_shard(shard, list(records), output, tar=tar, parquet=parquet, schema=schema,
                       parquet_dir=parquet_dir, layout=layout, digits=digits, score_model=score_model)
