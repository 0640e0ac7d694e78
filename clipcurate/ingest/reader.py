"""``read_file``: one input file -> ``(status, record)`` per candidate, any supported format.

Pure Python (no Beam pipeline); files are opened through Beam's FileSystems so local
paths, gs://, s3:// ... all work.
"""
from __future__ import annotations

from typing import Iterator

from clipcurate.ingest.archive import read_archive
from clipcurate.ingest.config import IngestConfig
from clipcurate.ingest.formats import detect_format
from clipcurate.ingest.rows import Pair
from clipcurate.ingest.tabular import read_delimited, read_jsonl, read_parquet


def read_file(path: str, cfg: IngestConfig) -> Iterator[Pair]:
    """Yield ``(status, record)`` for every candidate row (tabular) or image (warc/wat) in
    ``path``.  status is ``ok`` or a drop reason from clipcurate.schemas.status.  Raises
    ValueError naming the file when it cannot be read at all (unknown format, missing
    column, not a Parquet/WARC file)."""
    fmt = detect_format(path, cfg.input_format)
    if fmt == "parquet":
        return read_parquet(path, cfg)
    if fmt in ("csv", "tsv"):
        return read_delimited(path, cfg, fmt)
    if fmt == "jsonl":
        return read_jsonl(path, cfg)
    return read_archive(path, fmt)
