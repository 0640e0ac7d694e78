"""Common Crawl archives: WARC/ARC (HTML responses -> <img src alt>) and WAT (JSON
``Links`` entries with path ``IMG@/src``).  Gzipped (multi-member) or plain, via warcio.

In: a path.  Out: ``(status, record)`` per image; ``offset`` is the byte offset of the
WARC record (in the stored, possibly compressed, file); ``extra`` holds ``page_url``.
A file that does not start like a WARC/ARC raises ValueError; a stream cut short (or
corrupt) counts one ``truncated_record`` and ends that file cleanly.  A .warc.gz that is
one gzip stream (not one member per record) is read too, decompressed.
"""
from __future__ import annotations

import html as html_lib
import json
import zlib
from typing import Any, Iterator

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from clipcurate.ingest.formats import open_binary, open_raw
from clipcurate.ingest.html_images import base_url, classify_image, is_html, pairs_from_html
from clipcurate.ingest.rows import Pair, candidate, dropped, make_record

_STREAM_ERRORS = (ArchiveLoadFailed, EOFError, zlib.error, OSError, ValueError)
WAT_IMG_PATH = "IMG@/src"
_DRAIN = 1 << 16
ARCHIVE_MAGICS = (b"WARC/", b"filedesc://")


class _Truncated(Exception):
    """The record's bytes end before its Content-Length."""


def read_archive(path: str, fmt: str, source: str | None = None) -> Iterator[Pair]:
    """Yield (status, record) for every image of every HTML response / WAT metadata record.
    ``source`` (default: ``path``) is the lineage name written into records and errors."""
    name = source or path
    _check_header(path, name)
    records = _records(path)
    while True:
        try:
            offset, record = next(records)
        except StopIteration:
            return
        except _StreamBroken as e:
            yield _truncated(name, fmt, e.offset, e.__cause__)
            return
        try:
            yield from _record_pairs(record, name, offset)
        except _Truncated as e:
            yield _truncated(name, fmt, offset, e)
            return


class _StreamBroken(Exception):
    def __init__(self, offset: int):
        super().__init__(offset)
        self.offset = offset


def _check_header(path: str, name: str) -> None:
    """Raise ValueError unless the (gunzipped) file starts like a WARC or ARC file."""
    try:
        with open_binary(path) as f:
            head = f.read(16)
    except (EOFError, zlib.error, OSError) as e:
        raise ValueError(f"{name}: not a readable WARC/ARC/WAT file: {e}") from e
    if head and not head.startswith(ARCHIVE_MAGICS):
        raise ValueError(f"{name}: not a readable WARC/ARC/WAT file (starts with {head!r})")


def _records(path: str) -> Iterator[tuple[int, Any]]:
    """(byte offset, warcio record) per record.  A gzip that is one stream instead of one
    member per record (warcio refuses it) is re-read decompressed, offsets then count
    uncompressed bytes.  A broken stream raises _StreamBroken(offset) from the cause."""
    seen = 0
    with open_raw(path) as raw:
        it = ArchiveIterator(raw, arc2warc=True)
        try:
            for record in it:
                seen += 1
                yield it.offset, record  # start of this record (get_record_offset() would consume it)
            return
        except ArchiveLoadFailed as e:
            if "non-chunked gzip" not in str(e):
                raise _StreamBroken(it.offset) from e
        except _STREAM_ERRORS as e:
            raise _StreamBroken(it.offset) from e
    with open_binary(path) as plain:
        it = ArchiveIterator(plain, arc2warc=True)
        try:
            for i, record in enumerate(it):
                if i >= seen:
                    yield it.offset, record
        except _STREAM_ERRORS as e:
            raise _StreamBroken(it.offset) from e


def _truncated(path: str, fmt: str, offset: int, err: BaseException | None) -> Pair:
    return dropped("truncated_record", source=path, offset=offset, source_format=fmt,
                   error=f"{path}: record at byte {offset} truncated or unreadable: {err}")


def _read_body(record) -> tuple[bytes | None, Exception | None]:
    """(decoded payload, None), or (None, error) when the payload cannot be decoded.
    Raises _Truncated when the stored bytes end before the record's Content-Length."""
    body, err = None, None
    try:
        body = record.content_stream().read()
    except Exception as e:  # noqa: BLE001 - content-encoding / chunking errors of one record
        err = e
    _drain(record)
    return body, err


def _drain(record) -> None:
    try:
        while record.raw_stream.read(_DRAIN):
            pass
    except (EOFError, zlib.error, OSError) as e:
        raise _Truncated(str(e)) from e
    if getattr(record.raw_stream, "limit", 0) > 0:
        raise _Truncated(f"{record.raw_stream.limit} bytes missing")


def _record_pairs(record, path: str, offset: int) -> Iterator[Pair]:
    kind = _kind(record)
    if kind is None:
        _drain(record)
        return
    body, err = _read_body(record)
    fmt = "warc" if kind == "html" else "wat"
    if err is not None:
        yield dropped("truncated_record", source=path, offset=offset, source_format=fmt,
                      error=f"{path}: record at byte {offset} unreadable: {err}")
        return
    page_url = record.rec_headers.get_header("WARC-Target-URI") or ""
    if kind == "html":
        ctype = record.http_headers.get_header("Content-Type") if record.http_headers else None
        triples = pairs_from_html(body, ctype, page_url)
    else:
        triples, page_url, error = _wat_triples(body, page_url)
        if error:
            yield dropped("malformed_row", source=path, offset=offset, source_format=fmt,
                          error=f"{path}: WAT record at byte {offset}: {error}")
            return
    extra = {"page_url": page_url}
    for status, url, caption in triples:
        yield _pair(status, url, caption, path, offset, fmt, extra)


def _pair(status: str, url: str, caption: str, path: str, offset: int, fmt: str,
          extra: dict[str, Any]) -> Pair:
    if status == "ok":
        return candidate(url, caption, source=path, offset=offset, source_format=fmt, extra=extra,
                         missing_caption="empty_alt")
    return status, make_record(url, caption, path, offset, fmt, extra)


def _kind(record) -> str | None:
    """'html' for an HTML response, 'wat' for a JSON metadata record, else None."""
    if record.rec_type == "response" and record.http_headers is not None:
        ctype = (record.http_headers.get_header("Content-Type")
                 or record.rec_headers.get_header("WARC-Identified-Payload-Type"))
        return "html" if is_html(ctype) else None
    if record.rec_type == "metadata":
        ctype = (record.rec_headers.get_header("Content-Type") or "").lower()
        return "wat" if ctype.startswith("application/json") else None
    return None


def _wat_triples(body: bytes, page_url: str) -> tuple[list[tuple[str, str, str]], str, str | None]:
    """(triples, page url, error) of one WAT JSON record; only response records with
    HTML-Metadata have links.  url and alt are HTML-unescaped (WAT keeps '&amp;' raw)."""
    try:
        data = json.loads(body.decode("utf-8", "surrogateescape"))
    except json.JSONDecodeError as e:
        return [], page_url, f"bad JSON: {e}"
    env = data.get("Envelope") if isinstance(data, dict) else None
    if not isinstance(env, dict):
        return [], page_url, None
    page_url = (env.get("WARC-Header-Metadata") or {}).get("WARC-Target-URI") or page_url
    meta = (((env.get("Payload-Metadata") or {}).get("HTTP-Response-Metadata") or {})
            .get("HTML-Metadata") or {})
    head = meta.get("Head") or {}
    base = base_url(page_url, html_lib.unescape(head["Base"]) if isinstance(head.get("Base"), str) else None)
    triples = []
    for link in meta.get("Links") or []:
        if isinstance(link, dict) and link.get("path") == WAT_IMG_PATH:
            src, alt = (html_lib.unescape(str(link.get(k) or "")) for k in ("url", "alt"))
            triples.append(classify_image(src, alt, base))
    return triples, page_url, None
