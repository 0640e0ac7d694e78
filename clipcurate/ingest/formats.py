"""Input formats: detection from the file name (or its first bytes), opening through
Beam's FileSystems (local, gs://, s3://, ...) and transparent gunzip.

In: a path and an :class:`IngestConfig`.  Out: a format name and binary streams.
"""
from __future__ import annotations

import contextlib
import gzip
import io
from typing import BinaryIO, Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

FORMATS = ("parquet", "csv", "tsv", "jsonl", "warc", "wat", "mmc4")  # mmc4: only when named
_ARCHIVE_SUFFIXES = {".wat": "wat", ".warc": "warc", ".arc": "warc"}
_TABLE_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv",
                   ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}
GZIP_MAGIC = b"\x1f\x8b"


def _suffixes(path: str) -> list[str]:
    """Lower-case suffixes of the file name, outermost last, without .gz ('a.warc.wat.gz' -> ['.warc', '.wat'])."""
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    parts = name.split(".")[1:]
    sufs = ["." + p for p in parts]
    while sufs and sufs[-1] in (".gz", ".gzip"):
        sufs.pop()
    return sufs


def detect_format(path: str, input_format: str = "auto") -> str:
    """Format of ``path``: ``input_format`` unless it is ``auto``, else from the extension
    (``.parquet``, ``.csv``, ``.tsv``, ``.jsonl``/``.json``, ``.warc``/``.arc``, ``.wat``; ``.gz``
    ignored), else from the first bytes (``PAR1`` -> parquet, ``WARC/`` -> warc).
    Raises ValueError naming the path when nothing fits."""
    if input_format != "auto":
        if input_format not in FORMATS:
            raise ValueError(f"input_format={input_format!r} is not one of auto, {', '.join(FORMATS)}")
        return input_format
    sufs = _suffixes(path)
    if sufs and sufs[-1] in _TABLE_SUFFIXES:
        return _TABLE_SUFFIXES[sufs[-1]]
    if sufs and sufs[-1] in _ARCHIVE_SUFFIXES:
        return _ARCHIVE_SUFFIXES[sufs[-1]]
    if sufs and sufs[-1] == ".wet":
        raise ValueError(f"{path}: WET files hold plain text without <img> tags; use the WARC or WAT file")
    sniffed = _sniff(path)
    if sniffed:
        return sniffed
    raise ValueError(f"{path}: cannot tell the input format from the name or content; "
                     f"set input_format to one of {', '.join(FORMATS)}")


def _sniff(path: str) -> str | None:
    """Guess the format from the first bytes (gunzipped when gzip)."""
    try:
        with open_binary(path) as f:
            head = f.read(8)
    except (OSError, EOFError):
        return None
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"WARC/"):
        return "warc"
    return None


def open_raw(path: str) -> BinaryIO:
    """The file's bytes as stored (no decompression), via Beam FileSystems."""
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


@contextlib.contextmanager
def open_binary(path: str) -> Iterator[BinaryIO]:
    """Context manager: the file's bytes, gunzipped when they start with the gzip magic
    (multi-member gzip ok; a truncated gzip raises EOFError while reading)."""
    with open_raw(path) as raw:
        buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
        if buffered.peek(2)[:2] == GZIP_MAGIC:
            with gzip.GzipFile(fileobj=buffered, mode="rb") as gz:
                yield gz
        else:
            yield buffered
