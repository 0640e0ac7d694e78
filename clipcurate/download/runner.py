"""Records in, records with a download status out -- the part of the stage without Beam.

:func:`apply_outcome` turns a candidate record plus a FetchResult into the output
record (pure, deterministic).  :class:`DownloadRunner` owns one asyncio event loop in a
daemon thread, one :class:`~.fetch.Fetcher`, a small thread pool for image work and the
optional fetch cache; ``submit(record)`` returns a concurrent Future of
``(status, record)`` so a synchronous caller (a Beam DoFn) keeps many fetches in flight.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
from typing import Any, Iterable

from clipcurate.download.cache import FetchCache
from clipcurate.download.config import DownloadConfig
from clipcurate.download.fetch import Fetcher, FetchResult
from clipcurate.download.guard import ResolveFn
from clipcurate.download.image import process_image
from clipcurate.schemas.uid import make_uid

IMAGE_FIELDS = ("image", "sha256", "width", "height", "original_width", "original_height", "image_format")
Record = dict[str, Any]


def apply_outcome(record: Record, fr: FetchResult, cfg: DownloadConfig) -> tuple[str, Record]:
    """``(status, record)``: the record gains status/error/http_status, and when the fetch
    and the image checks pass, the image fields (``image`` = stored bytes)."""
    out = dict(record, status=fr.status, error=fr.error, http_status=fr.http_status)
    for k in IMAGE_FIELDS:
        out.pop(k, None)
    if fr.status != "ok":
        return fr.status, out
    img = process_image(fr.body or b"", cfg)
    out["status"], out["error"] = img.status, img.error
    out["original_width"], out["original_height"] = img.original_width, img.original_height
    if img.status == "ok":
        out.update(image=img.image, sha256=img.sha256, width=img.width, height=img.height,
                   image_format=img.image_format)
    return img.status, out


def record_uid(record: Record) -> str:
    uid = record.get("uid")
    if isinstance(uid, str) and uid:
        return uid
    return make_uid(str(record.get("url") or ""), str(record.get("caption") or ""))


class DownloadRunner:
    """Event loop thread + Fetcher + image threads + cache for one worker process."""

    def __init__(self, cfg: DownloadConfig, resolve_fn: ResolveFn | None = None):
        self.cfg = cfg
        self.cache = FetchCache(cfg.cache_dir) if cfg.cache_dir else None
        self.pool = concurrent.futures.ThreadPoolExecutor(cfg.decode_threads, thread_name_prefix="dl-image")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="dl-loop", daemon=True)
        self.thread.start()
        self.fetcher = self._call(self._open(resolve_fn))
        self.counts: collections.Counter[str] = collections.Counter()

    async def _open(self, resolve_fn: ResolveFn | None) -> Fetcher:
        f = Fetcher(self.cfg, resolve_fn=resolve_fn)
        f.open()
        return f

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def submit(self, record: Record) -> concurrent.futures.Future:
        """Start fetching ``record``; the Future yields ``(status, record)``."""
        return asyncio.run_coroutine_threadsafe(self._one(record), self.loop)

    async def _one(self, record: Record) -> tuple[str, Record]:
        loop = asyncio.get_running_loop()
        uid = record_uid(record)
        fr = None
        if self.cache is not None:
            fr = await loop.run_in_executor(self.pool, self.cache.get, uid)
        if fr is None:
            fr = await self.fetcher.fetch(record.get("url"))
            self.counts["fetched"] += 1
            if self.cache is not None:
                await loop.run_in_executor(self.pool, self.cache.put, uid, fr)
        else:
            self.counts["from_cache"] += 1
        return await loop.run_in_executor(self.pool, apply_outcome, record, fr, self.cfg)

    def run(self, records: Iterable[Record]) -> list[tuple[str, Record]]:
        """Fetch all ``records`` (at most ``cfg.batch_size`` in flight); results in input order."""
        futures, pending = [], set()
        for rec in records:
            futures.append(self.submit(rec))
            pending.add(futures[-1])
            if len(pending) >= self.cfg.batch_size:
                _, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
        return [f.result() for f in futures]

    def stats(self) -> dict[str, Any]:
        """Cumulative counters of this runner (requests, retries, bytes, cache hits, ...)."""
        out = dict(self.fetcher.stats) | dict(self.counts)
        out["max_request_seconds"] = round(self.fetcher.max_request_seconds, 3)
        return out

    def close(self) -> None:
        if self.loop.is_closed():
            return
        try:
            self._call(self.fetcher.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()
            self.pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> "DownloadRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
