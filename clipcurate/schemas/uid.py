"""Stable sample identity and seeded randomness (see DESIGN.md, "Conventions").

``uid`` is blake2b-128 (hex) of the normalized URL and the caption.  Every random
draw is a function of ``(seed, uid, purpose)``, never of a global RNG, so results do
not depend on runner, worker count or bundle boundaries.
"""
from __future__ import annotations

import hashlib
import re
import struct
from urllib.parse import urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
# A URL already in normal form: lower-case http(s) scheme and host, no userinfo or port, then
# nothing or a path of printable ASCII without '#' or backslash.  urlsplit/urlunsplit would
# give it back unchanged (plus "/" when the path is empty), so it skips them: ~99.8 % of real
# alt-text URLs, and normalize_url runs twice per candidate (uid at ingest, URL dedupe key).
_NORMAL = re.compile(r"https?://[a-z0-9._~-]+(/[!-\"$-\[\]-~]*)?")


def normalize_url(url: str) -> str:
    """Normalize a URL for identity: trim, lowercase scheme and host, drop default
    port and fragment.  Path, query and case of the path are kept (they matter to servers).
    Unparseable URLs are returned stripped, unchanged otherwise."""
    url = url.strip()
    m = _NORMAL.fullmatch(url)
    if m and not url.endswith("?"):  # a trailing "?" (empty query) is dropped by urlunsplit
        return url if m.group(1) else url + "/"
    return _normalize_split(url)


def _normalize_split(url: str) -> str:
    """normalize_url of a stripped URL through urlsplit (any URL; the reference)."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return url
    if not scheme or not host:
        return url
    netloc = host if ":" not in host else f"[{host}]"
    if parts.username or parts.password:
        cred = parts.username or ""
        if parts.password:
            cred += ":" + parts.password
        netloc = cred + "@" + netloc
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def make_uid(url: str, caption: str) -> str:
    """blake2b-128 hex of the normalized URL and the caption, separated by NUL."""
    h = hashlib.blake2b(digest_size=16)
    h.update(normalize_url(url).encode("utf-8", "surrogatepass"))
    h.update(b"\x00")
    h.update((caption or "").encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def seeded_uniform(seed: int, uid: str, purpose: str) -> float:
    """A deterministic draw in [0, 1) from (seed, uid, purpose)."""
    h = hashlib.blake2b(f"{seed}\x00{uid}\x00{purpose}".encode(), digest_size=8).digest()
    return (struct.unpack(">Q", h)[0] >> 11) * (1.0 / (1 << 53))


def seeded_int(seed: int, uid: str, purpose: str) -> int:
    """A deterministic 64-bit integer from (seed, uid, purpose)."""
    h = hashlib.blake2b(f"{seed}\x00{uid}\x00{purpose}".encode(), digest_size=8).digest()
    return struct.unpack(">Q", h)[0]


def shard_of(uid: str, num_shards: int) -> int:
    """Shard number of a uid: its integer value mod ``num_shards``."""
    if num_shards <= 0:
        raise ValueError(f"num_shards must be > 0, got {num_shards}")
    return int(uid, 16) % num_shards
