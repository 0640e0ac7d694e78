"""One input file read to the end, whatever is wrong with it: faults become data.

:class:`InputRead` iterates the file's ``(status, record)`` pairs (as :func:`read_file`),
never raising for a bad file, and leaves a manifest entry in ``.info``::

    {"source", "bytes", "sha256", "status", "rows"[, "error"][, "url"]}

File status (clipcurate.schemas.status):

* ``ok`` -- read to the end;
* ``truncated_file`` -- the stream ends early or turns corrupt part-way: the rows read
  before the fault are kept (the same bytes always give the same prefix, so a Beam retry
  gives the same output), and the fault is one ``truncated_record`` drop;
* ``bad_file`` -- nothing could be read: not the expected format (corrupt Parquet, not a
  WARC, bad gzip, unknown format), or a missing column; one ``bad_file`` drop;
* ``unreadable_file`` -- it cannot be opened or read (permission denied, vanished since
  listing, I/O error); one ``unreadable_file`` drop.

The sha256 is of the stored bytes, streamed in 1 MiB chunks before the file is parsed
(one extra sequential read on the worker that reads the file; nothing on the launcher).
Error texts name the file by its source, never by its path.
"""
from __future__ import annotations

import gzip
import hashlib
import os
from typing import Any, Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from clipcurate.ingest.config import IngestConfig
from clipcurate.ingest.formats import detect_format
from clipcurate.ingest.lineage import is_remote
from clipcurate.ingest.reader import read_file
from clipcurate.ingest.rows import Pair, dropped

_HASH_CHUNK = 1 << 20
_MAX_ERROR = 500
_ARCHIVES = ("warc", "wat")


def hash_file(path: str) -> tuple[str, int]:
    """(sha256 hex, size) of the stored bytes."""
    h, n = hashlib.sha256(), 0
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            h.update(chunk)
            n += len(chunk)
    return h.hexdigest(), n


def fault_status(e: BaseException) -> str:
    """``unreadable_file`` for an I/O fault (an OSError with an errno, Beam's BeamIOError),
    else ``bad_file`` (the content is wrong)."""
    seen: BaseException | None = e
    while seen is not None:
        if (isinstance(seen, OSError) and seen.errno is not None and not isinstance(seen, gzip.BadGzipFile)) \
                or type(seen).__name__ == "BeamIOError":
            return "unreadable_file"
        seen = seen.__cause__ or seen.__context__
    return "bad_file"


def clean_error(text: str, path: str, source: str) -> str:
    """``text`` on one line, at most 500 characters, with the file's path replaced by its source."""
    for form in sorted({path, os.path.abspath(path) if not is_remote(path) else path}, key=len, reverse=True):
        text = text.replace(form, source)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR else text[:_MAX_ERROR - 1] + "…"


def describe(e: BaseException) -> str:
    """An exception as text; the type is named unless the message already names the fault."""
    msg = str(e)
    return msg if isinstance(e, ValueError) and msg else f"{type(e).__name__}: {msg}"


class InputRead:
    """Iterate the candidates of one input file; ``.info`` is its manifest entry once done."""

    def __init__(self, path: str, source: str, cfg: IngestConfig, size: int | None = None):
        self.path, self.source, self.cfg = path, source, cfg
        self.info: dict[str, Any] = {"source": source, "bytes": size, "sha256": None, "status": "ok", "rows": 0}
        if is_remote(path):
            self.info["url"] = path

    def __iter__(self) -> Iterator[Pair]:
        try:
            self.info["sha256"], self.info["bytes"] = hash_file(self.path)
        except Exception as e:  # noqa: BLE001 - any fault opening the file is data
            yield self._file_drop(e)
            return
        last: dict[str, Any] | None = None
        try:
            for status, rec in read_file(self.path, self.cfg, self.source):
                if rec.get("error"):
                    rec["error"] = clean_error(rec["error"], self.path, self.source)
                if status == "truncated_record":
                    self._set("truncated_file", rec["error"])
                self.info["rows"] += 1
                last = rec
                yield status, rec
        except Exception as e:  # noqa: BLE001 - a corrupt file may raise anything from a parser
            if last is None:
                yield self._file_drop(e)
                return
            error = clean_error(f"{self.source}: unreadable after row {last['offset']}: {describe(e)}",
                                self.path, self.source)
            self._set("truncated_file", error)
            self.info["rows"] += 1
            fmt = last["source_format"]
            yield dropped("truncated_record", source=self.source, source_format=fmt, error=error,
                          offset=last["offset"] + (0 if fmt in _ARCHIVES else 1))

    def run(self) -> dict[str, Any]:
        """Read the whole file (discarding the pairs); return ``.info``."""
        for _ in self:
            pass
        return self.info

    def _set(self, status: str, error: str) -> None:
        if self.info["status"] == "ok":
            self.info["status"], self.info["error"] = status, error

    def _file_drop(self, e: BaseException) -> Pair:
        status = fault_status(e)
        error = clean_error(describe(e), self.path, self.source)
        if not error.startswith(self.source):
            error = f"{self.source}: {error}"
        self._set(status, error)
        self.info["rows"] = 1
        return dropped(status, source=self.source, offset=0, source_format=self._format(), error=error)

    def _format(self) -> str:
        try:
            return detect_format(self.path, self.cfg.input_format)
        except Exception:  # noqa: BLE001 - the format may be what is wrong
            return ""
