"""Per-host concurrency and rate limits for the fetch loop (asyncio, one event loop).

:class:`TokenBucket` paces requests to ``rate`` per second with bursts of ``burst``;
the clock and the sleep are injected so tests run without waiting.
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable


class TokenBucket:
    """Token bucket: ``acquire()`` returns once a token is available (``rate`` <= 0: never waits)."""

    def __init__(self, rate: float, burst: int = 1, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self.sleep = sleep
        self.tokens = float(self.burst)
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def reserve(self) -> float:
        """Take a token now (possibly going negative); return seconds to wait before using it."""
        if self.rate <= 0:
            return 0.0
        self._refill()
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    async def acquire(self) -> float:
        """Wait for a token; return the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            await self.sleep(wait)
        return wait


class HostLimits:
    """One semaphore and one token bucket per host key, created on first use."""

    def __init__(self, per_host_concurrency: int, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.per_host_concurrency = per_host_concurrency
        self.rate, self.burst, self.clock, self.sleep = rate, burst, clock, sleep
        self._sems: dict[str, asyncio.Semaphore] = {}
        self._buckets: dict[str, TokenBucket] = {}

    def semaphore(self, host: str) -> asyncio.Semaphore:
        if host not in self._sems:
            self._sems[host] = asyncio.Semaphore(self.per_host_concurrency)
        return self._sems[host]

    def bucket(self, host: str) -> TokenBucket:
        if host not in self._buckets:
            self._buckets[host] = TokenBucket(self.rate, self.burst, self.clock, self.sleep)
        return self._buckets[host]
