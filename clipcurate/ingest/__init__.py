"""clipcurate.ingest: candidate (url, caption) pairs from Parquet, CSV, TSV, JSONL, WARC and WAT.

Public API: :func:`read_file` (pure reader), :class:`Ingest` (Beam PTransform),
:func:`input_files` (manifest inputs), :func:`detect_format`, :class:`IngestConfig`.
"""
from clipcurate.ingest.config import IngestConfig
from clipcurate.ingest.formats import FORMATS, detect_format
from clipcurate.ingest.reader import read_file
from clipcurate.ingest.transform import STAGE, Ingest, expand_inputs, input_files

__all__ = ["FORMATS", "STAGE", "Ingest", "IngestConfig", "detect_format", "expand_inputs",
           "input_files", "read_file"]
