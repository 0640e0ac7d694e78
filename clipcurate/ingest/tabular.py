"""Readers for tabular candidate files: Parquet, CSV, TSV and JSONL (or a JSON array).

In: a path, an :class:`IngestConfig` and the file's lineage name (``source``, written into
records and error texts instead of the path).  Out: an iterator of ``(status, record)``, one
per data row (blank lines skipped), or per list item when a column path expands a list
(:mod:`clipcurate.ingest.paths`; JSONL and Parquet).  ``offset`` is the 0-based data-row
index.  A file that cannot be read at all, or a missing column, raises ValueError naming
the file (and row).
"""
from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import zlib
from typing import Any, Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from clipcurate.ingest.config import IngestConfig
from clipcurate.ingest.formats import open_binary, open_raw
from clipcurate.ingest.paths import NotAList, RowPaths, resolve_paths
from clipcurate.ingest.rows import Pair, as_text, candidate, dropped, find_column

PARQUET_BATCH_ROWS = 8192
_TRUNCATED = (EOFError, zlib.error, gzip.BadGzipFile)  # a cut or corrupt gzip stream


def _columns(cfg: IngestConfig, available: Sequence[str], path: str) -> tuple[str, str, list[str]]:
    url = find_column(cfg.url_col, available, path, "url")
    cap = find_column(cfg.caption_col, available, path, "caption")
    extras = [find_column(c, available, path, "extra") for c in cfg.extra_cols]
    return url, cap, extras


def _truncated(name: str, fmt: str, offset: int, e: Exception) -> Pair:
    return dropped("truncated_record", source=name, offset=offset, source_format=fmt,
                   error=f"{name}: stream ends or is corrupt after row {offset}: {e}")


# -- Parquet ---------------------------------------------------------------------------
def read_parquet(path: str, cfg: IngestConfig, source: str | None = None) -> Iterator[Pair]:
    """Stream a Parquet file row group by row group in record batches (only the needed
    top-level columns are read; struct and list columns are walked with column paths)."""
    name = source or path
    with open_raw(path) as f:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as e:
            raise ValueError(f"{name}: not a readable Parquet file: {e}") from e
        paths = _paths(cfg, pf.schema_arrow.names, name)
        needed = paths.columns
        offset = 0
        try:
            for group in range(pf.num_row_groups):  # a corrupt row group stops after the good ones
                for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=[group], columns=needed):
                    cols = {c: batch.column(c).to_pylist() for c in needed}
                    if paths.flat:  # the common case, without a dict per row
                        yield from _flat_pairs(cols, paths, cfg, name, offset, batch.num_rows)
                        offset += batch.num_rows
                        continue
                    for values in zip(*cols.values()):
                        yield from _row_pairs(dict(zip(needed, values)), paths, cfg, name, offset, "parquet")
                        offset += 1
        except (pa.ArrowException, OSError) as e:
            raise ValueError(f"{name}: Parquet data unreadable at row {offset}: {e}") from e


def _paths(cfg: IngestConfig, available, where: str) -> RowPaths:
    return resolve_paths(cfg.url_col, cfg.caption_col, cfg.extra_cols, available, where)


def _flat_pairs(cols: dict[str, list], paths: RowPaths, cfg: IngestConfig, name: str, offset: int,
                n: int) -> Iterator[Pair]:
    url, cap = cols[paths.url[0]], cols[paths.caption[0]]
    extras = [(key, cols[steps[0]]) for key, steps in paths.extras]
    for i in range(n):
        extra = {key: col[i] for key, col in extras} or None
        yield candidate(url[i], cap[i], source=name, offset=offset + i, source_format="parquet", extra=extra,
                        url_col=cfg.url_col, caption_col=cfg.caption_col)


def _row_pairs(row: dict[str, Any], paths: RowPaths, cfg: IngestConfig, name: str, offset: int,
               fmt: str) -> Iterator[Pair]:
    """The candidates of one row: one, or one per item of the expanded list."""
    try:
        triples = paths.rows(row)
    except NotAList as e:
        yield dropped("malformed_row", source=name, offset=offset, source_format=fmt,
                      error=f"{name} row {offset}: {e}")
        return
    for url, caption, extra in triples:
        yield candidate(url, caption, source=name, offset=offset, source_format=fmt, extra=extra,
                        url_col=cfg.url_col, caption_col=cfg.caption_col)


# -- CSV / TSV ---------------------------------------------------------------------------
def _text_lines(binary: io.BufferedIOBase, encoding: str) -> Iterator[str]:
    """Decode lines (bad bytes kept as surrogates, counted later), drop a BOM and NULs."""
    enc = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    text = io.TextIOWrapper(binary, encoding=enc, errors="surrogateescape", newline="")
    for line in text:
        yield line.replace("\x00", "")


def read_delimited(path: str, cfg: IngestConfig, fmt: str, source: str | None = None) -> Iterator[Pair]:
    """CSV (RFC 4180 quoting) or TSV (tab-separated, no quoting). The first row is the
    header unless ``cfg.columns`` names the columns of a headerless file.  Column names
    are plain names here (a header cell may hold dots)."""
    name = source or path
    dialect = {"delimiter": ","} if fmt == "csv" else {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    with open_binary(path) as binary:
        reader = csv.reader(_text_lines(binary, cfg.encoding), **dialect)
        rows = _safe_rows(reader, name, fmt)
        header = list(cfg.columns) if cfg.columns else _header(rows, name)
        url, cap, extras = _columns(cfg, header, name)
        index = {col: i for i, col in enumerate(header)}
        offset = 0
        for kind, row, err in rows:
            if kind == "row":
                yield _delimited_row(row, header, index, url, cap, extras, name, fmt, offset,
                                     reader.line_num)
            elif kind == "malformed":
                yield dropped("malformed_row", source=name, offset=offset, source_format=fmt,
                              error=f"{name} line {reader.line_num}: {err}")
            else:
                yield _truncated(name, fmt, offset, err)
                return
            offset += 1


def _safe_rows(reader, path: str, fmt: str) -> Iterator[tuple[str, list[str] | None, Exception | None]]:
    """Rows as ('row', fields, None); csv errors as ('malformed', None, e); a truncated or
    corrupt stream as ('truncated', None, e), after which iteration stops. Blank lines skipped."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield "malformed", None, e
            continue
        except _TRUNCATED as e:
            yield "truncated", None, e
            return
        if row:
            yield "row", row, None


def _header(rows: Iterator, path: str) -> list[str]:
    for kind, row, err in rows:
        if kind == "row":
            return [as_text(c).strip() for c in row]
        raise ValueError(f"{path}: header row unreadable: {err}")
    raise ValueError(f"{path}: file is empty (no header row); set columns for a headerless file")


def _delimited_row(row, header, index, url, cap, extras, path, fmt, offset, line) -> Pair:
    if len(row) != len(header) and not (len(row) > len(header) and not any(row[len(header):])):
        return dropped("malformed_row", source=path, offset=offset, source_format=fmt,
                       error=f"{path} line {line}: expected {len(header)} fields, got {len(row)}")
    extra = {c: row[index[c]] for c in extras} or None
    return candidate(row[index[url]], row[index[cap]], source=path, offset=offset,
                     source_format=fmt, extra=extra)


# -- JSONL -------------------------------------------------------------------------------
def read_jsonl(path: str, cfg: IngestConfig, source: str | None = None) -> Iterator[Pair]:
    """JSON Lines (one object per line), or a single JSON array of objects. Columns (or
    column paths) are resolved from the first object; a bad line is a malformed_row drop."""
    name = source or path
    with open_binary(path) as binary:
        objects = json_objects(binary, name, cfg.encoding, allow_array=not _is_jsonl_name(path))
        paths: RowPaths | None = None
        for offset, (obj, err) in enumerate(objects):
            if err is not None:
                yield json_error(err, name, offset, "jsonl")
                if isinstance(err, _TRUNCATED):
                    return
                continue
            if paths is None:
                paths = _paths(cfg, list(obj), f"{name} row {offset}")
            yield from _row_pairs(obj, paths, cfg, name, offset, "jsonl")


def json_error(err: Exception, name: str, offset: int, fmt: str) -> Pair:
    """The drop for a line that did not give a JSON object (truncated_record when the stream broke)."""
    reason = "truncated_record" if isinstance(err, _TRUNCATED) else "malformed_row"
    return dropped(reason, source=name, offset=offset, source_format=fmt, error=f"{name} row {offset}: {err}")


def _is_jsonl_name(path: str) -> bool:
    name = path.lower().removesuffix(".gz")
    return name.endswith((".jsonl", ".ndjson"))


def json_objects(binary, path: str, encoding: str,
                  allow_array: bool) -> Iterator[tuple[dict[str, Any] | None, Exception | None]]:
    """(object, None) per JSON object, (None, error) per bad line / non-object.  When
    ``allow_array`` (a .json file) and the file starts with '[', it is one JSON array."""
    lines = _text_lines(binary, encoding)
    try:
        first = next((ln for ln in lines if ln.strip()), None)
    except _TRUNCATED as e:
        yield None, e
        return
    if first is None:
        return
    if allow_array and first.lstrip().startswith("["):
        yield from _json_array(first, lines, path)
        return
    yield from _json_lines(first, lines)


def _json_lines(first: str, lines: Iterable[str]):
    it = iter(lines)
    line: str | None = first
    while line is not None:
        if line.strip():
            yield _parse_object(line)
        try:
            line = next(it)
        except StopIteration:
            return
        except _TRUNCATED as e:
            yield None, e
            return


def _json_array(first: str, lines: Iterable[str], path: str):
    try:
        data = json.loads(first + "".join(lines))
    except _TRUNCATED as e:
        yield None, e
        return
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (array): {e}") from e
    for item in data:
        yield (item, None) if isinstance(item, dict) else (None, ValueError(f"not a JSON object: {item!r:.80}"))


def _parse_object(line: str):
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        return None, ValueError(f"bad JSON: {e}")
    if not isinstance(obj, dict):
        return None, ValueError(f"not a JSON object: {line.strip()[:80]!r}")
    return obj, None
