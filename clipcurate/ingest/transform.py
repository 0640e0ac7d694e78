"""Beam wiring for ingest: expand inputs, spread files over workers, read each file in
one DoFn call with :func:`read_file`, count every candidate.

``p | Ingest(cfg)`` -> ``{"kept", "counts", "rejects"}`` (see clipcurate.pipelines.stage).
Counts for stage ``ingest``: ``in`` (rows / images seen, plus one per unreadable record),
``kept``, ``dropped:<reason>``; in == kept + sum(dropped).
"""
from __future__ import annotations

import hashlib
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from clipcurate.ingest.config import IngestConfig
from clipcurate.ingest.formats import detect_format
from clipcurate.ingest.reader import read_file
from clipcurate.pipelines.stage import CountingDoFn, apply_stage

STAGE = "ingest"
_HASH_CHUNK = 1 << 20


def expand_inputs(cfg: IngestConfig) -> list[tuple[str, int]]:
    """(path, size in bytes) of every file the inputs name, sorted, without repeats.
    Raises ValueError naming the pattern when one matches nothing, or when there is no input."""
    if not cfg.inputs:
        raise ValueError("ingest: no inputs given (set ingest.inputs / --input)")
    found: dict[str, int] = {}
    for pattern in cfg.inputs:
        try:
            metas = FileSystems.match([pattern])[0].metadata_list
        except Exception as e:  # noqa: BLE001 - Beam raises BeamIOError with per-pattern detail
            raise ValueError(f"ingest: cannot list input {pattern!r}: {e}") from e
        if not metas:
            raise ValueError(f"ingest: input {pattern!r} matches no file")
        for m in metas:
            found[m.path] = m.size_in_bytes
    return sorted(found.items())


def input_files(cfg: IngestConfig) -> list[dict[str, Any]]:
    """For the manifest: [{"path", "bytes", "sha256"}] per input file (sha256 of the stored
    bytes, streamed in 1 MiB chunks)."""
    out = []
    for path, size in expand_inputs(cfg):
        h = hashlib.sha256()
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
                h.update(chunk)
        out.append({"path": path, "bytes": size, "sha256": h.hexdigest()})
    return out


class _ReadFileDoFn(CountingDoFn):
    """A file path in; its candidates out (kept) and counted per status."""

    def __init__(self, cfg: IngestConfig, keep_rejects: bool):
        super().__init__(STAGE, keep_rejects)
        self.cfg = cfg

    def process(self, path: str):
        for status, record in read_file(path, self.cfg):
            self._counts["in"] += 1
            yield from self._emit(status, record)


class Ingest(beam.PTransform):
    """Read candidates from ``cfg.inputs`` (paths or globs; Parquet, CSV, TSV, JSONL, WARC,
    WAT; gzipped or plain).  Applied to the pipeline root: ``p | Ingest(cfg)``.

    Returns ``{"kept": candidate records, "counts": ((stage, key), n) pairs, "rejects":
    dropped records with stage and reason (only when keep_rejects)}``.  Inputs are
    listed at construction: a pattern that matches nothing, or a file whose format
    cannot be told, raises ValueError naming it.  Cost: one DoFn call per file."""

    def __init__(self, cfg: IngestConfig, keep_rejects: bool = False):
        super().__init__()
        self.cfg = cfg
        self.keep_rejects = keep_rejects
        self.files = [path for path, _ in expand_inputs(cfg)]
        for path in self.files:
            detect_format(path, cfg.input_format)

    def expand(self, pbegin):
        paths = (pbegin
                 | "Files" >> beam.Create(self.files)
                 | "Spread" >> beam.Reshuffle())
        return apply_stage(paths, "Read", _ReadFileDoFn(self.cfg, self.keep_rejects))
