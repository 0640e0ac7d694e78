"""Fetch cache keyed by uid: a rerun after a kill does not refetch what was fetched.

One file per uid, ``<dir>/<uid[:2]>/<uid>.fetch``: a JSON header line (status, http
status, error, final url, content type, attempts, redirects) then the raw body.  Files
are written to a temporary name and renamed, so a kill leaves either the whole entry or
none.  Outcomes are cached whether ok or failed; the image is re-processed from the
cached body, so results are byte-identical to an uninterrupted run with the same config.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from clipcurate.download.fetch import FetchResult

_FIELDS = ("url", "status", "http_status", "final_url", "content_type", "error", "attempts", "redirects")


class FetchCache:
    """``get(uid) -> FetchResult | None`` and ``put(uid, FetchResult)`` under ``root``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, uid: str) -> Path:
        if not uid or not all(c.isalnum() for c in uid):
            raise ValueError(f"uid {uid!r} cannot name a cache file (expected hex)")
        return self.root / uid[:2] / f"{uid}.fetch"

    def get(self, uid: str) -> FetchResult | None:
        """The cached outcome, or None when absent or unreadable (then it is refetched)."""
        try:
            blob = self.path(uid).read_bytes()
            head, _, body = blob.partition(b"\n")
            meta = json.loads(head)
            has_body = meta.pop("has_body")
            return FetchResult(**{k: meta.get(k) for k in _FIELDS}, body=body if has_body else None)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, uid: str, res: FetchResult) -> None:
        path = self.path(uid)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {k: getattr(res, k) for k in _FIELDS}
        meta["has_body"] = res.body is not None
        blob = json.dumps(meta, sort_keys=True).encode() + b"\n" + (res.body or b"")
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.fetch"))
