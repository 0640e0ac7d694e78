"""Staged runs: a job that starts from an earlier job's ``until_<stage>`` Parquet.

``run --until balance`` writes the records that survived the text stages to
``out1/until_balance/*.parquet``; ``run --after balance --input 'out1/until_balance/*.parquet'``
reads them back (stage ``resume``) and runs only the stages after ``balance``.  Text stages
write the CANDIDATE schema; image stages write DOWNLOADED (with the image bytes), so a
scoring job can start from a download job.  A null column is an absent field, as in the
records the stages pass along, so a staged run writes the same shard bytes as one job.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from clipcurate.config import STAGES
from clipcurate.schemas.records import CANDIDATE, DOWNLOADED

STAGE = "resume"
TEXT_STAGES = STAGES[:STAGES.index("download")]  # until_* of these holds CANDIDATE records


def until_schema(stage: str) -> pa.Schema:
    """The schema of ``until_<stage>`` Parquet."""
    return CANDIDATE if stage in TEXT_STAGES else DOWNLOADED


def steps_after(steps: list[tuple], after: str | None) -> list[tuple]:
    """The pipeline steps (``(stage name, ...)`` tuples) that come after stage ``after``."""
    if after is None:
        return list(steps)
    return [s for s in steps if STAGES.index(s[0]) > STAGES.index(after)]


def check_kind(schema: pa.Schema, after: str, path: str) -> None:
    """Raise ValueError unless a Parquet file's schema is what ``until_<after>`` holds."""
    want = until_schema(after).metadata[b"clipcurate_kind"].decode()
    got = (schema.metadata or {}).get(b"clipcurate_kind", b"").decode() or "not clipcurate output"
    if got != want:
        raise ValueError(f"{path}: holds {got!r} records, but --after {after} reads until_{after} Parquet "
                         f"({want!r} records, written by a run with --until {after})")


def records_from_table(table: pa.Table) -> Iterator[dict[str, Any]]:
    """Rows as record dicts, null columns left out."""
    for row in table.to_pylist():
        yield {k: v for k, v in row.items() if v is not None}


def read_records(f, after: str, path: str, batch_size: int = 256) -> Iterator[dict[str, Any]]:
    """Records of one ``until_<after>`` Parquet file object, batch by batch."""
    pf = pq.ParquetFile(f)
    check_kind(pf.schema_arrow, after, path)
    for batch in pf.iter_batches(batch_size=batch_size):
        yield from records_from_table(pa.Table.from_batches([batch]))


class _ReadDoFn(beam.DoFn):
    def __init__(self, after: str):
        self.after = after

    def process(self, readable: fileio.ReadableFile) -> Iterable:
        n = 0
        with readable.open(compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for rec in read_records(f, self.after, readable.metadata.path):
                n += 1
                yield rec
        yield beam.pvalue.TaggedOutput("counts", ((STAGE, "in"), n))
        yield beam.pvalue.TaggedOutput("counts", ((STAGE, "kept"), n))


class ReadUntil(beam.PTransform):
    """``until_<after>`` Parquet (paths or globs) -> the records, counted as stage ``resume``.

    The first file of each pattern is checked on the launcher (clear error for a wrong
    ``--after``); workers check every file they read."""

    def __init__(self, patterns: list[str], after: str):
        super().__init__()
        self.patterns, self.after = list(patterns), after

    def expand(self, pbegin):
        for m in FileSystems.match(self.patterns):
            if m.metadata_list:
                path = sorted(x.path for x in m.metadata_list)[0]
                with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                    check_kind(pq.read_schema(f), self.after, path)
        out = (pbegin | "Patterns" >> beam.Create(self.patterns)
               | "Match" >> fileio.MatchAll()
               | "Open" >> fileio.ReadMatches()
               | "Read" >> beam.ParDo(_ReadDoFn(self.after)).with_outputs("counts", main="kept"))
        return {"kept": out.kept, "counts": out.counts}
