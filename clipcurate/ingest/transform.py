"""Beam wiring for ingest: list inputs, spread files over workers, read each file in one
DoFn call with :class:`InputRead`, count every candidate and every file.

``p | Ingest(cfg)`` -> ``{"kept", "counts", "rejects", "files"}`` (see clipcurate.pipelines.stage;
``files``: one manifest entry per input file, with its status).
Counts for stage ``ingest``: ``in`` (rows / images seen, plus one per unreadable record
and one per skipped file), ``kept``, ``dropped:<reason>``; in == kept + sum(dropped).
Per file: ``files_in`` == ``files_ok`` + ``files_truncated`` + ``files_skipped``.
"""
from __future__ import annotations

from typing import Any

import apache_beam as beam

from clipcurate.ingest.config import IngestConfig
from clipcurate.ingest.formats import detect_format
from clipcurate.ingest.inputs import InputRead
from clipcurate.ingest.lineage import expand_inputs as _expand
from clipcurate.pipelines.stage import COUNTS, REJECTS, CountingDoFn

STAGE = "ingest"
FILES = "files"
_FILE_COUNT = {"ok": "files_ok", "truncated_file": "files_truncated",
               "bad_file": "files_skipped", "unreadable_file": "files_skipped"}
BAD_FILE_MARK = "bad input file: "


class BadInputFile(ValueError):
    """An input file is not fully readable and ``ingest.on_bad_file`` is ``fail``."""


def bad_file_message(info: dict[str, Any]) -> str:
    return (f"{BAD_FILE_MARK}{info['source']} is {info['status']}: {info.get('error', '')} "
            f"(ingest.on_bad_file=fail; set it to skip to curate the other files)")


def expand_inputs(cfg: IngestConfig) -> list[tuple[str, str, int]]:
    """``(path, source, size)`` of every input file (see clipcurate.ingest.lineage)."""
    return _expand(cfg.inputs)


def input_files(cfg: IngestConfig) -> list[dict[str, Any]]:
    """The manifest's ``inputs`` without a pipeline: every file read here, in this process
    ({"source", "bytes", "sha256", "status", "rows"[, "error"][, "url"]}); never raises for
    a bad file."""
    return [InputRead(path, source, cfg, size).run() for path, source, size in expand_inputs(cfg)]


class _ReadFileDoFn(CountingDoFn):
    """``(path, source, size)`` in; its candidates out (kept), counted per status; its
    manifest entry on the ``files`` output.  Raises BadInputFile for a file that is not
    ``ok`` when ``on_bad_file`` is ``fail``."""

    def __init__(self, cfg: IngestConfig, keep_rejects: bool):
        super().__init__(STAGE, keep_rejects)
        self.cfg = cfg

    def process(self, element):
        path, source, size = element
        read = InputRead(path, source, self.cfg, size)
        for status, record in read:
            self._counts["in"] += 1
            yield from self._emit(status, record)
        info = read.info
        if info["status"] != "ok" and self.cfg.on_bad_file == "fail":
            raise BadInputFile(bad_file_message(info))
        self._counts["files_in"] += 1
        self._counts[_FILE_COUNT[info["status"]]] += 1
        yield beam.pvalue.TaggedOutput(FILES, info)


class Ingest(beam.PTransform):
    """Read candidates from ``cfg.inputs`` (paths or globs; Parquet, CSV, TSV, JSONL, WARC,
    WAT, mmc4; gzipped or plain).  Applied to the pipeline root: ``p | Ingest(cfg)``.

    Returns ``{"kept": candidate records, "counts": ((stage, key), n) pairs, "rejects":
    dropped records with stage and reason (only when keep_rejects), "files": one manifest
    entry per input file}``.  Inputs are listed at construction: a pattern that matches
    nothing, or a bad ``input_format``, raises ValueError naming it; with
    ``on_bad_file="fail"`` so does a file whose format cannot be told.  A file that cannot
    be read is a counted drop (``on_bad_file="skip"``) or stops the run (``"fail"``).
    Cost: one DoFn call per file, which hashes the file and then parses it."""

    def __init__(self, cfg: IngestConfig, keep_rejects: bool = False):
        super().__init__()
        self.cfg = cfg
        self.keep_rejects = keep_rejects
        if cfg.input_format != "auto":
            detect_format("", cfg.input_format)
        self.inputs = expand_inputs(cfg)
        self.files = [path for path, _, _ in self.inputs]
        if cfg.on_bad_file == "fail":
            for path in self.files:
                detect_format(path, cfg.input_format)

    def expand(self, pbegin):
        out = (pbegin
               | "Files" >> beam.Create(self.inputs)
               | "Spread" >> beam.Reshuffle()
               | "Read" >> beam.ParDo(_ReadFileDoFn(self.cfg, self.keep_rejects))
               .with_outputs(COUNTS, REJECTS, FILES, main="kept"))
        return {"kept": out.kept, "counts": out[COUNTS], "rejects": out[REJECTS], "files": out[FILES]}
