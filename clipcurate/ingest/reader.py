"""``read_file``: one input file -> ``(status, record)`` per candidate, any supported format.

Pure Python (no Beam pipeline); files are opened through Beam's FileSystems so local
paths, gs://, s3:// ... all work.
"""
from __future__ import annotations

from typing import Iterator

from clipcurate.ingest.archive import read_archive
from clipcurate.ingest.config import IngestConfig
from clipcurate.ingest.formats import detect_format
from clipcurate.ingest.mmc4 import read_mmc4
from clipcurate.ingest.rows import Pair
from clipcurate.ingest.tabular import read_delimited, read_jsonl, read_parquet


def read_file(path: str, cfg: IngestConfig, source: str | None = None) -> Iterator[Pair]:
    """Yield ``(status, record)`` for every candidate row (tabular), list item (column
    paths with ``[*]``, mmc4 images) or image (warc/wat) in ``path``.  status is ``ok`` or a
    drop reason from clipcurate.schemas.status.  ``source`` is the lineage name written
    into records and error texts (default: ``path``).  Raises ValueError naming the file
    when it cannot be read at all (unknown format, missing column, not a Parquet/WARC
    file); OSError when it cannot be opened."""
    fmt = detect_format(path, cfg.input_format)
    if fmt == "parquet":
        return read_parquet(path, cfg, source)
    if fmt in ("csv", "tsv"):
        return read_delimited(path, cfg, fmt, source)
    if fmt == "jsonl":
        return read_jsonl(path, cfg, source)
    if fmt == "mmc4":
        return read_mmc4(path, cfg, source)
    return read_archive(path, fmt, source)
