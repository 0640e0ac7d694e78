"""pyarrow schemas, one per record kind, and validation helpers.

Records travel through the pipeline as plain ``dict``s whose keys are the schema's
field names.  Each stage adds fields; a field that a stage has not reached yet is
absent (or ``None``) and is written as null.

* ``CANDIDATE``: an (url, caption) pair after ingest and the text stages.
* ``DOWNLOADED``: a candidate plus the fetch outcome and (when ok) image bytes.
* ``FINAL``: what the Parquet shards hold: everything but the image bytes.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

import pyarrow as pa

SCHEMA_VERSION = 1

_CANDIDATE_FIELDS = [
    pa.field("uid", pa.string(), nullable=False),
    pa.field("url", pa.string(), nullable=False),
    pa.field("caption", pa.string(), nullable=False),
    pa.field("source", pa.string()),          # input file (lineage)
    pa.field("offset", pa.int64()),           # row index, or byte offset of the WARC record
    pa.field("source_format", pa.string()),   # parquet | csv | tsv | jsonl | warc | wat
    pa.field("extra", pa.string()),           # JSON object of carried-through input columns
    pa.field("language", pa.string()),
    pa.field("language_score", pa.float32()),
    pa.field("matched", pa.list_(pa.int32())),  # metadata entry ids matched by the caption
    pa.field("schema_version", pa.int16()),
]

_DOWNLOAD_FIELDS = [
    pa.field("status", pa.string()),
    pa.field("error", pa.string()),
    pa.field("sha256", pa.string()),          # of the stored image bytes
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("original_width", pa.int32()),
    pa.field("original_height", pa.int32()),
    pa.field("image_format", pa.string()),
    pa.field("http_status", pa.int32()),
    pa.field("phash", pa.string()),
]

_SCORE_FIELDS = [
    pa.field("clip_score", pa.float32()),
]

CANDIDATE = pa.schema(_CANDIDATE_FIELDS, metadata={"clipcurate_kind": "candidate",
                                                   "schema_version": str(SCHEMA_VERSION)})
DOWNLOADED = pa.schema(_CANDIDATE_FIELDS + _DOWNLOAD_FIELDS + _SCORE_FIELDS
                       + [pa.field("image", pa.binary())],
                       metadata={"clipcurate_kind": "downloaded", "schema_version": str(SCHEMA_VERSION)})
FINAL = pa.schema(_CANDIDATE_FIELDS + _DOWNLOAD_FIELDS + _SCORE_FIELDS,
                  metadata={"clipcurate_kind": "final", "schema_version": str(SCHEMA_VERSION)})
REJECT = pa.schema(_CANDIDATE_FIELDS + _DOWNLOAD_FIELDS + _SCORE_FIELDS
                   + [pa.field("stage", pa.string()), pa.field("reason", pa.string()),
                      pa.field("duplicate_of", pa.string()),   # uid of the kept sample (dedupe)
                      pa.field("eval_set", pa.string()),       # decontamination: which eval set
                      pa.field("eval_image", pa.string())],    # ... and which image in it
                   metadata={"clipcurate_kind": "reject", "schema_version": str(SCHEMA_VERSION)})

SCHEMAS = {"candidate": CANDIDATE, "downloaded": DOWNLOADED, "final": FINAL, "reject": REJECT}


class SchemaError(ValueError):
    """A record does not fit its schema; the message names the field and the value."""


def new_candidate(*, url: str, caption: str, source: str, offset: int, source_format: str,
                  uid: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "uid": uid, "url": url, "caption": caption, "source": source, "offset": int(offset),
        "source_format": source_format,
        "extra": json.dumps(extra, sort_keys=True, ensure_ascii=False, default=str) if extra else None,
        "schema_version": SCHEMA_VERSION,
    }


def to_table(records: Iterable[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Build a table from record dicts; missing fields become null, unknown ones are ignored.
    Raises SchemaError naming the field when a value has the wrong type."""
    records = list(records)
    cols = {}
    for f in schema:
        values = [r.get(f.name) for r in records]
        try:
            cols[f.name] = pa.array(values, type=f.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as e:
            bad = next((v for v in values if v is not None and not _fits(v, f.type)), None)
            raise SchemaError(f"field {f.name!r} ({f.type}) cannot hold {bad!r}: {e}") from e
        if not f.nullable and cols[f.name].null_count:
            raise SchemaError(f"field {f.name!r} is required but {cols[f.name].null_count} record(s) lack it")
    return pa.Table.from_pydict(cols, schema=schema)


def _fits(value: Any, typ: pa.DataType) -> bool:
    try:
        pa.array([value], type=typ)
        return True
    except Exception:  # noqa: BLE001 - probing
        return False


def validate(record: dict[str, Any], schema: pa.Schema) -> None:
    """Raise SchemaError if ``record`` does not fit ``schema``."""
    to_table([record], schema)
