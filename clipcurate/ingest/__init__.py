"""clipcurate.ingest: candidate (url, caption) pairs from Parquet, CSV, TSV, JSONL, WARC, WAT
and mmc4 documents.

Public API: :func:`read_file` (pure reader), :class:`InputRead` (one file, faults as data),
:class:`Ingest` (Beam PTransform), :func:`expand_inputs` (paths and lineage names),
:func:`input_files` (manifest inputs without Beam), :func:`detect_format`, :class:`IngestConfig`.
"""
from clipcurate.ingest.config import IngestConfig
from clipcurate.ingest.formats import FORMATS, detect_format
from clipcurate.ingest.inputs import InputRead
from clipcurate.ingest.reader import read_file
from clipcurate.ingest.transform import STAGE, BadInputFile, Ingest, expand_inputs, input_files

__all__ = ["FORMATS", "STAGE", "BadInputFile", "Ingest", "IngestConfig", "InputRead", "detect_format",
           "expand_inputs", "input_files", "read_file"]
