"""HTML pages to image (src, alt) pairs: charset choice, <img> extraction, URL resolution.

* :func:`decode_html` -- bytes + Content-Type header -> (text, charset, lossy).
* :func:`img_tags` -- HTML text -> (base href or None, [(src, alt), ...]) raw attribute values.
* :func:`classify_image` -- one raw (src, alt) + base URL -> (status, absolute url, caption).
"""
from __future__ import annotations

import codecs
import re
from typing import Iterable
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

META_SCAN_BYTES = 4096
_META_CHARSET = re.compile(rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I)
# What browsers really mean by these labels (WHATWG Encoding Standard): the superset codec.
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "iso-8859-1": "cp1252",
              "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252",
              "shift_jis": "cp932", "shift-jis": "cp932", "sjis": "cp932", "x-sjis": "cp932",
              "windows-31j": "cp932", "euc-kr": "cp949", "ks_c_5601-1987": "cp949",
              "big5": "big5hkscs", "tis-620": "cp874", "iso-8859-9": "cp1254",
              "utf-16": "utf-8", "utf-16le": "utf-8", "utf-16be": "utf-8", "unicode": "utf-8"}
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
_WS_IN_URL = re.compile(r"[\t\n\r]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
HTML_TYPES = ("text/html", "application/xhtml+xml")


def _codec(label: str | None) -> str | None:
    """A Python codec name for a charset label, or None if unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _SUPERSETS.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def header_charset(content_type: str | None) -> str | None:
    m = _HEADER_CHARSET.search(content_type or "")
    return _codec(m.group(1)) if m else None


def meta_charset(body: bytes) -> str | None:
    m = _META_CHARSET.search(body[:META_SCAN_BYTES])
    return _codec(m.group(1).decode("ascii", "ignore")) if m else None


def decode_html(body: bytes, content_type: str | None) -> tuple[str, str, bool]:
    """Decode a page -> (text, codec, lossy).  A BOM wins.  Else the declared charsets
    (Content-Type header, then <meta> in the first 4 KiB) are tried strictly; if all fail,
    the first declared one decodes with U+FFFD replacement and ``lossy=True`` (as browsers
    do).  With no declaration: utf-8 strictly, else cp1252 (replacement, lossy, only for
    its five undefined bytes).  Labels map to their WHATWG superset (gb2312 -> gb18030,
    iso-8859-1 -> cp1252, shift_jis -> cp932, ...).  NULs are removed."""
    for bom, enc in _BOMS:
        if body.startswith(bom):
            return body[len(bom):].decode(enc, "replace").replace("\x00", ""), enc, False
    declared = [c for c in (header_charset(content_type), meta_charset(body)) if c]
    tries = list(dict.fromkeys(declared or ["utf-8", "cp1252"]))
    for enc in tries:
        try:
            return body.decode(enc).replace("\x00", ""), enc, False
        except UnicodeDecodeError:
            continue
    fallback = tries[0] if declared else "cp1252"
    return body.decode(fallback, "replace").replace("\x00", ""), fallback, True


def img_tags(html: str) -> tuple[str | None, list[tuple[str, str]]]:
    """(href of the first <base href>, [(src, alt)] per <img>).  src falls back to the first
    candidate of srcset when src is absent or empty; missing attributes are ''."""
    tree = LexborHTMLParser(html)
    base = tree.css_first("base[href]")
    base_href = (base.attributes.get("href") or None) if base is not None else None
    pairs = []
    for node in tree.css("img"):
        attrs = node.attributes
        src = (attrs.get("src") or "").strip() or first_srcset(attrs.get("srcset") or "")
        pairs.append((src, attrs.get("alt") or ""))
    return base_href, pairs


def first_srcset(srcset: str) -> str:
    """The URL of the first candidate in a srcset ('a.jpg 1x, b.jpg 2x' -> 'a.jpg')."""
    first = srcset.strip().split(",", 1)[0].split()
    return first[0] if first else ""


def base_url(page_url: str, base_href: str | None) -> str:
    """The URL relative links resolve against: <base href> (itself resolved) or the page URL."""
    if not base_href:
        return page_url
    try:
        return urljoin(page_url, _WS_IN_URL.sub("", base_href.strip()))
    except ValueError:
        return page_url


def classify_image(src: str, alt: str, base: str, lossy: bool = False) -> tuple[str, str, str]:
    """(status, url, caption) for one image.  Checks in order: missing_url (no src),
    empty_alt, data_uri, bad_url (unresolvable or not http(s) after resolving against
    ``base``), bad_encoding (U+FFFD in a page that did not decode cleanly).  The caption is
    the alt text with control characters removed and whitespace runs collapsed to one space."""
    src = _WS_IN_URL.sub("", src.strip())
    caption = " ".join(_CONTROL.sub(" ", alt).split())
    if not src:
        return "missing_url", src, caption
    if not caption:
        return "empty_alt", src, caption
    if src[:5].lower() == "data:":
        return "data_uri", src[:64], caption
    url = resolve(base, src)
    if url is None:
        return "bad_url", src, caption
    if lossy and ("\ufffd" in url or "\ufffd" in caption):
        return "bad_encoding", url, caption
    return "ok", url, caption


def resolve(base: str, src: str) -> str | None:
    """Absolute http(s) URL of ``src`` against ``base`` (spaces percent-encoded as a
    browser would), or None."""
    try:
        url = urljoin(base, src)
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return url.replace(" ", "%20")


def is_html(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() in HTML_TYPES


def pairs_from_html(body: bytes, content_type: str | None, page_url: str) -> Iterable[tuple[str, str, str]]:
    """All (status, url, caption) of one HTML page."""
    html, _, lossy = decode_html(body, content_type)
    base_href, tags = img_tags(html)
    base = base_url(page_url, base_href)
    return [classify_image(src, alt, base, lossy) for src, alt in tags]
