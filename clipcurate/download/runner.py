"""Records in, records with a download status out -- the part of the stage without Beam.

:func:`apply_outcome` turns a candidate record plus a FetchResult into the output
record (pure, deterministic).  :class:`DownloadRunner` owns one asyncio event loop in a
daemon thread, one :class:`~.fetch.Fetcher`, an :class:`~.pool.ImagePool` (image work in
worker processes, so it never delays the loop's deadline timers), a small thread pool
for cache I/O and the optional fetch cache; ``submit(record)`` returns a concurrent
Future of ``(status, record)`` so a synchronous caller (a Beam DoFn) keeps many fetches
in flight.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
import time
from typing import Any, Iterable

from clipcurate.download.cache import FetchCache
from clipcurate.download.config import DownloadConfig
from clipcurate.download.fetch import Fetcher, FetchResult
from clipcurate.download.guard import ResolveFn
from clipcurate.download.image import ImageResult, process_image
from clipcurate.download.pool import ImagePool
from clipcurate.schemas.uid import make_uid

IMAGE_FIELDS = ("image", "sha256", "width", "height", "original_width", "original_height", "image_format")
Record = dict[str, Any]


def apply_outcome(record: Record, fr: FetchResult, cfg: DownloadConfig,
                  img: ImageResult | None = None) -> tuple[str, Record]:
    """``(status, record)``: the record gains status/error/http_status, and when the fetch
    and the image checks pass, the image fields (``image`` = stored bytes).  ``img``: the
    result of ``process_image(fr.body, cfg)`` when already computed (in an image worker)."""
    out = dict(record, status=fr.status, error=fr.error, http_status=fr.http_status)
    for k in IMAGE_FIELDS:
        out.pop(k, None)
    if fr.status != "ok":
        return fr.status, out
    if img is None:
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


LAG_PROBE = 0.05  # seconds between event-loop lag probes


class DownloadRunner:
    """Event loop thread + Fetcher + image worker processes + cache for one worker process."""

    def __init__(self, cfg: DownloadConfig, resolve_fn: ResolveFn | None = None):
        self.cfg = cfg
        self.cache = FetchCache(cfg.cache_dir) if cfg.cache_dir else None
        self.pool = concurrent.futures.ThreadPoolExecutor(cfg.decode_threads, thread_name_prefix="dl-io")
        self.images = ImagePool(cfg)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="dl-loop", daemon=True)
        self.thread.start()
        self.fetcher = self._call(self._open(resolve_fn))
        self.counts: collections.Counter[str] = collections.Counter()
        self.max_loop_lag = 0.0
        self.first_submit = self.last_done = None  # wall clock (time.time) of the first/last sample

    async def _open(self, resolve_fn: ResolveFn | None) -> Fetcher:
        f = Fetcher(self.cfg, resolve_fn=resolve_fn)
        f.open()
        self._lag_task = asyncio.get_running_loop().create_task(self._probe_lag())
        return f

    async def _probe_lag(self) -> None:
        """Record how late the loop wakes up (late timers = late deadlines)."""
        while True:
            t = time.monotonic()
            await asyncio.sleep(LAG_PROBE)
            self.max_loop_lag = max(self.max_loop_lag, time.monotonic() - t - LAG_PROBE)

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def submit(self, record: Record) -> concurrent.futures.Future:
        """Start fetching ``record``; the Future yields ``(status, record)``."""
        if self.first_submit is None:
            self.first_submit = time.time()
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
            if self.cache is not None and fr.status != "dns_timeout":  # a resolver hiccup: refetch next run
                await loop.run_in_executor(self.pool, self.cache.put, uid, fr)
        else:
            self.counts["from_cache"] += 1
        img = None
        if fr.status == "ok":  # decode/resize/encode in an image worker, off this loop
            img = await asyncio.wrap_future(self.images.submit(fr.body or b""))
        out = apply_outcome(record, fr, self.cfg, img)
        self.last_done = time.time()
        return out

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
        out = dict(self.fetcher.stats) | dict(self.fetcher.resolver.stats) | dict(self.counts)
        out["robots_evictions"] = self.fetcher.robots.evictions
        out["max_request_seconds"] = round(self.fetcher.max_request_seconds, 3)
        out["max_loop_lag_seconds"] = round(self.max_loop_lag, 3)
        if self.first_submit is not None and self.last_done is not None:
            out["min_first_submit_unix"], out["max_last_done_unix"] = self.first_submit, self.last_done
        return out

    def close(self) -> None:
        if self.loop.is_closed():
            return
        try:
            self._call(self._shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.images.close()

    async def _shutdown(self) -> None:
        self._lag_task.cancel()
        await self.fetcher.close()

    def __enter__(self) -> "DownloadRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
