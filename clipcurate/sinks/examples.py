"""A few example thumbnails per outcome, for the report: ``stats/examples.parquet``.

Rejects Parquet stays lean (no image bytes), so the only moment a dropped image can be
shown is while the pipeline still holds it.  :class:`WriteExamples` takes the final kept
records and all rejected records; for the kept rows (``stage="kept"``) and for each
``(stage, reason)`` of an image-stage drop (near_dup, dedupe_content, decontam,
score_filter, ... -- any reject still carrying ``image``) it keeps the ``per_outcome``
records with the smallest uid (deterministic: no element order, no randomness) and stores
a small JPEG thumbnail with uid, caption and score.  Cost: a Top-n combine per outcome
(n images held per bundle), n thumbnails per outcome.  The file is always written (empty
when no record carries an image), so it never describes an earlier run.
"""
from __future__ import annotations

import io
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq

from clipcurate.sinks.files import join, write_atomic

EXAMPLES_FILE = "stats/examples.parquet"
PER_OUTCOME = 6
THUMB_PX = 96
KEPT = "kept"

SCHEMA = pa.schema([
    pa.field("stage", pa.string()), pa.field("reason", pa.string()), pa.field("uid", pa.string()),
    pa.field("caption", pa.string()), pa.field("clip_score", pa.float32()),
    pa.field("width", pa.int32()), pa.field("height", pa.int32()),
    pa.field("duplicate_of", pa.string()), pa.field("thumbnail", pa.binary()),
])


def thumbnail(image: bytes, px: int = THUMB_PX) -> bytes | None:
    """A JPEG at most ``px`` on its longer side, or None when the bytes do not decode."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(image)) as im:
            im.draft("RGB", (px, px))
            im = im.convert("RGB")
            im.thumbnail((px, px))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=80)
            return buf.getvalue()
    except Exception:  # noqa: BLE001 - an example that cannot be shown is simply skipped
        return None


def _candidate(rec: dict[str, Any], stage: str, reason: str):
    """((stage, reason), sortable value) for a record with image bytes; nothing otherwise."""
    image = rec.get("image")
    if not image:
        return
    yield (stage, reason), (rec["uid"], rec.get("sha256") or "", rec.get("caption") or "",
                            rec.get("clip_score"), rec.get("width"), rec.get("height"),
                            rec.get("duplicate_of"), image)


def _order(value) -> tuple:
    return value[:3]  # uid, then image hash and caption to break ties between repeated rows


def example_rows(outcome: tuple[str, str], values: list) -> list[dict[str, Any]]:
    """Table rows (with thumbnails) for one outcome's chosen values."""
    (stage, reason), rows = outcome, []
    for uid, _, caption, score, w, h, dup, image in sorted(values, key=_order):
        thumb = thumbnail(image)
        if thumb is not None:
            rows.append({"stage": stage, "reason": reason, "uid": uid, "caption": caption, "clip_score": score,
                         "width": w, "height": h, "duplicate_of": dup, "thumbnail": thumb})
    return rows


def examples_bytes(rows: list[dict[str, Any]]) -> bytes:
    rows = sorted(rows, key=lambda r: (r["stage"] != KEPT, r["stage"], r["reason"], r["uid"]))
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def _write(groups: list, output: str) -> str:
    rows = [r for outcome, values in groups for r in example_rows(outcome, values)]
    path = join(output, EXAMPLES_FILE)
    write_atomic(path, examples_bytes(rows))
    return path


class WriteExamples(beam.PTransform):
    """``(kept records, rejected records) | WriteExamples(output)``: writes ``stats/examples.parquet``
    (see the module doc); returns a PCollection of its path."""

    def __init__(self, output: str, per_outcome: int = PER_OUTCOME):
        super().__init__()
        if not isinstance(per_outcome, int) or per_outcome < 1:
            raise ValueError(f"per_outcome must be an integer >= 1, got {per_outcome!r}")
        self.output, self.per_outcome = output, per_outcome

    def expand(self, pcolls):
        kept, rejects = pcolls
        kept_c = kept | "Kept" >> beam.FlatMap(lambda r: _candidate(r, KEPT, "ok"))
        rej_c = rejects | "Dropped" >> beam.FlatMap(lambda r: _candidate(r, r["stage"], r["reason"]))
        return ((kept_c, rej_c)
                | "All" >> beam.Flatten()
                | "Smallest" >> beam.combiners.Top.PerKey(self.per_outcome, key=_order, reverse=True)
                | "Gather" >> beam.combiners.ToList()
                | "Write" >> beam.Map(_write, self.output))


def read_examples(output_dir: str) -> list[dict[str, Any]] | None:
    """The examples file's rows, or None when the run has none."""
    from apache_beam.io.filesystems import FileSystems

    from clipcurate.sinks.files import read_bytes

    path = join(output_dir, EXAMPLES_FILE)
    if not FileSystems.exists(path):
        return None
    return pq.read_table(io.BytesIO(read_bytes(path))).to_pylist()
