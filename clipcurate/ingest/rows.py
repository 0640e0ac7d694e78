"""Shared row logic: column lookup and turning one (url, caption) into a counted candidate.

In: raw values from any reader.  Out: ``(status, record)`` where record is built with
:func:`clipcurate.schemas.records.new_candidate` and status is ``ok`` or a drop reason.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any, Sequence

from clipcurate.schemas.records import new_candidate
from clipcurate.schemas.uid import make_uid

# Tried, in order, only when url_col / caption_col keep their default values.
URL_ALIASES = ("url", "image_url", "img_url", "image", "src")
CAPTION_ALIASES = ("caption", "text", "alt", "alt_text", "txt", "title")
_DEFAULTS = {"url": URL_ALIASES, "caption": CAPTION_ALIASES}
_SURROGATE = re.compile(r"[\ud800-\udfff]")

Pair = tuple[str, dict[str, Any]]


def find_column(name: str, available: Sequence[str], path: str, role: str) -> str:
    """The column of ``available`` that ``name`` means: the exact name, else the only
    case-insensitive match, else (for the default names 'url'/'caption') the first
    alias present (e.g. LAION's URL / TEXT).  Raises ValueError naming file and columns."""
    if name in available:
        return name
    for candidate in _DEFAULTS.get(name, (name,)):
        hits = [c for c in available if c.lower() == candidate.lower()]
        if len(hits) > 1:
            raise ValueError(f"{path}: {role} column {name!r} is ambiguous, matches {hits}")
        if hits:
            return hits[0]
    raise ValueError(f"{path}: no {role} column {name!r}; available columns: {list(available)}")


def has_surrogates(text: str) -> bool:
    """True when ``text`` holds bytes that did not decode (surrogateescape)."""
    return bool(_SURROGATE.search(text))


def as_text(value: Any) -> str:
    """A cell as text: None -> '', bytes decoded as UTF-8 (bad bytes kept as surrogates),
    other scalars via str(); NULs removed."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "surrogateescape")
    elif not isinstance(value, str):
        value = str(value)
    return value.replace("\x00", "")


def clean_extra(extra: dict[str, Any] | None) -> dict[str, Any] | None:
    """Replace undecodable bytes in string extras by U+FFFD (extras never cause a drop)."""
    if not extra:
        return extra
    return {k: (_replace_bad(v) if isinstance(v, str) else v) for k, v in extra.items()}


def candidate(url: Any, caption: Any, *, source: str, offset: int, source_format: str,
              extra: dict[str, Any] | None = None, missing_caption: str = "missing_caption",
              error: str | None = None, url_col: str = "url", caption_col: str = "caption") -> Pair:
    """Build one candidate and decide its status: malformed_row (a list or object where
    text must be, the column named), missing_url, missing_caption (or the given reason,
    e.g. empty_alt), bad_encoding (undecodable bytes in url or caption), else ok."""
    for value, role, col in ((url, "url", url_col), (caption, "caption", caption_col)):
        if isinstance(value, (list, tuple, dict)):
            kind = "an object" if isinstance(value, dict) else "a list"
            return dropped("malformed_row", source=source, offset=offset, source_format=source_format,
                           error=f"{source} row {offset}: {role} column {col!r} holds {kind}, not text",
                           url=url if isinstance(url, str) else "",
                           caption=caption if isinstance(caption, str) else "")
    url_s, cap_s = as_text(url).strip(), as_text(caption).strip()
    status = "ok"
    if not url_s:
        status = "missing_url"
    elif not cap_s:
        status = missing_caption
    elif has_surrogates(url_s) or has_surrogates(cap_s):
        status = "bad_encoding"
    return status, make_record(url_s, cap_s, source, offset, source_format, extra, error)


def dropped(reason: str, *, source: str, offset: int, source_format: str, error: str,
            url: str = "", caption: str = "") -> Pair:
    """A record for a row (or file) that could not be read (malformed_row, truncated_record,
    bad_file ...).  With neither url nor caption, its uid is made from reason, source and
    offset instead, so such rejects do not all share one uid (and sort the same in any run)."""
    rec = make_record(url, caption, source, offset, source_format, None, error)
    if not url and not caption:
        rec["uid"] = hashlib.blake2b(f"{reason}\x00{source}\x00{offset}".encode("utf-8", "surrogatepass"),
                                     digest_size=16).hexdigest()
    return reason, rec


def _replace_bad(text: str) -> str:
    return _SURROGATE.sub("\ufffd", text)


def make_record(url: str, caption: str, source: str, offset: int, source_format: str,
                extra: dict[str, Any] | None, error: str | None = None) -> dict[str, Any]:
    """A candidate record (uid from url + caption); undecodable bytes become U+FFFD."""
    url, caption = _replace_bad(url), _replace_bad(caption)
    rec = new_candidate(url=url, caption=caption, source=source, offset=offset,
                        source_format=source_format, uid=make_uid(url, caption),
                        extra=clean_extra(extra))
    if error:
        rec["error"] = error
    return rec
