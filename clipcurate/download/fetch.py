"""The HTTP fetch core: ``Fetcher.fetch(url) -> FetchResult`` (asyncio + aiohttp).

Why aiohttp: well kept, asyncio-native (thousands of requests in flight on one thread,
no thread per request), keep-alive pooling, and a pluggable resolver -- so the socket
connects to exactly the address our SSRF guard checked (:mod:`.guard`).

Per request (one HTTP exchange, each redirect hop is one): DNS + SSRF guard -> robots.txt
-> global + per-host slot -> per-host token bucket -> request.  One deadline covers the DNS
wait, connect, headers and every body read (the time queued for robots.txt and slots in
between is not counted) -> X-Robots-Tag checked from the headers before the body is read ->
body streamed under a byte cap, also counted after gzip/deflate decoding (decoded with
``max_length`` so a bomb never expands past the cap in memory; bytes after the end of the
compressed stream count too).  Politeness (slots, token bucket) is keyed by
:func:`host_key`, robots.txt by :func:`origin_key`: every spelling of a host is one host.
Timeouts, connection resets, 429 and 5xx are retried with exponential backoff and
jitter, honouring Retry-After.  Every outcome is a FetchResult with a status from
:mod:`clipcurate.schemas.status`; nothing raises.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import email.utils
import time
import zlib
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import aiohttp
from yarl import URL

from clipcurate.download.config import DownloadConfig
from clipcurate.download.guard import DnsTimeout, GuardedResolver, PrivateAddressError, ResolveFn, parse_overrides
from clipcurate.download.limits import HostLimits
from clipcurate.download.robots import RobotsCache, header_directives
from clipcurate.schemas.uid import seeded_uniform

RETRYABLE = ("timeout", "connection_error", "dns_timeout")
NOAI = ("noai", "noimageai")
CHUNK = 65536


@dataclass
class FetchResult:
    """Outcome of fetching one URL: ``status`` is "ok" (``body`` set) or a drop reason."""
    url: str
    status: str
    http_status: int | None = None
    body: bytes | None = None
    final_url: str | None = None
    content_type: str | None = None
    error: str | None = None
    attempts: int = 0
    redirects: int = 0
    retry_after: float | None = field(default=None, repr=False)
    final: bool = field(default=False, repr=False)  # True: do not retry (e.g. DNS failure)


def check_url(url: object, max_length: int) -> tuple[URL | None, str | None, str | None]:
    """Validate a candidate URL: ``(URL, None, None)`` or ``(None, status, error)``.

    Non-http(s) schemes -> bad_scheme; unparseable, host-less, over-long -> bad_url.
    IDN hosts are accepted (yarl encodes them to punycode)."""
    if not isinstance(url, str) or not url.strip():
        return None, "bad_url", "empty url"
    url = url.strip()
    if len(url) > max_length:
        return None, "bad_url", f"url longer than {max_length} characters"
    try:
        u = URL(url)
        host = u.raw_host
    except (ValueError, UnicodeError, TypeError) as e:
        return None, "bad_url", f"unparseable url: {e}"
    if u.scheme.lower() not in ("http", "https"):
        return None, "bad_scheme", f"scheme {u.scheme!r} is not http(s)"
    if not host:
        return None, "bad_url", "url has no host"
    return u, None, None


def host_key(u: URL) -> str:
    """Politeness key: lower-case IDNA host, no userinfo, port or trailing dot."""
    return (u.raw_host or "").lower().rstrip(".")


def origin_key(u: URL) -> str:
    """robots.txt origin (RFC 9309: per scheme, host and port): ``scheme://host[:port]``
    with the host as in :func:`host_key` and the port only when not the scheme's default."""
    host = host_key(u)
    host = f"[{host}]" if ":" in host else host
    port = "" if u.is_default_port() else f":{u.port}"
    return f"{u.scheme.lower()}://{host}{port}"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After value (delta-seconds or HTTP-date); None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Decoder:
    """Incremental gzip/deflate/identity decoder whose output never exceeds ``cap`` + 1 bytes."""

    def __init__(self, encoding: str, cap: int):
        self.cap, self.size, self.z = cap, 0, None
        enc = (encoding or "identity").strip().lower()
        if enc in ("gzip", "x-gzip"):
            self.z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc not in ("", "identity", "deflate"):
            raise ValueError(f"unsupported content-encoding {encoding!r}")
        self.pending_deflate = enc == "deflate"

    @property
    def compressed(self) -> bool:
        return self.z is not None or self.pending_deflate

    def feed(self, data: bytes) -> bytes:
        """Decoded bytes of ``data``; raises OverflowError once the decoded size passes the cap."""
        if self.pending_deflate:  # zlib-wrapped (RFC) or raw deflate (common in practice)
            self.z = zlib.decompressobj(zlib.MAX_WBITS if data[:1] == b"\x78" else -zlib.MAX_WBITS)
            self.pending_deflate = False
        if self.z is not None and self.z.eof:  # after the end of the stream: counted, not decoded
            self.size += len(data)
            out = b""
        else:  # max_length bounds the output: a bomb chunk stops expanding one byte past the cap
            out = data if self.z is None else self.z.decompress(data, self.cap - self.size + 1)
            self.size += len(out) + (len(self.z.unused_data) if self.z is not None else 0)
        if self.size > self.cap:
            raise OverflowError
        return out


class Fetcher:
    """Fetch URLs concurrently under the guards and limits of a DownloadConfig.

    Create inside a running event loop (or call :meth:`open` there); ``close()`` when done.
    ``resolve_fn`` is the DNS hook (tests map names to 127.0.0.1); ``clock``/``sleep``
    are injectable for retry and rate-limit tests.
    """

    def __init__(self, cfg: DownloadConfig, *, resolve_fn: ResolveFn | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.cfg = cfg
        self.clock, self.sleep = clock, sleep
        self.resolver = GuardedResolver(
            cfg.allow_loopback, parse_overrides(cfg.host_overrides), resolve_fn, nameservers=cfg.dns_servers,
            lookup_timeout=cfg.dns_timeout, ttl=cfg.dns_cache_ttl, negative_ttl=cfg.dns_negative_ttl,
            max_entries=cfg.dns_cache_size)
        self.limits = HostLimits(cfg.per_host_concurrency, cfg.per_host_rate, cfg.per_host_burst, clock, sleep)
        self.agent_token = cfg.user_agent.split("/", 1)[0].strip()
        self._parse = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dl-robots")
        self.robots = RobotsCache(self._fetch_robots, self.agent_token, cfg.robots_cache_bytes,
                                  cfg.robots_parse_seconds, self._parse)
        self.stats: collections.Counter = collections.Counter()
        self.max_request_seconds = 0.0
        self._global: asyncio.Semaphore | None = None
        self._session: aiohttp.ClientSession | None = None
        self._inflate: concurrent.futures.ThreadPoolExecutor | None = None

    # -- lifecycle ------------------------------------------------------------------
    def open(self) -> None:
        if self._session is not None:
            return
        self._global = asyncio.Semaphore(self.cfg.concurrency)
        # gzip/deflate bodies are inflated here (zlib releases the GIL): the loop stays free
        self._inflate = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="dl-inflate")
        # no connector-level limit: our semaphores bound concurrency, so no request can
        # spend its deadline queued inside aiohttp
        connector = aiohttp.TCPConnector(resolver=self.resolver, limit=0, limit_per_host=0,
                                         use_dns_cache=False, enable_cleanup_closed=True)  # ours caches
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.cfg.timeout),
            headers={"User-Agent": self.cfg.user_agent, "Accept-Encoding": "gzip, deflate"})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            await self.resolver.close()
            self._session = None
            self._inflate.shutdown(wait=False, cancel_futures=True)
            self._parse.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> "Fetcher":
        self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- public ---------------------------------------------------------------------
    async def fetch(self, url: str) -> FetchResult:
        """Fetch one URL with retries; never raises (bugs aside)."""
        self.open()
        u, status, error = check_url(url, self.cfg.max_url_length)
        if u is None:
            return FetchResult(url=str(url), status=status, error=error)
        attempt = 0
        while True:
            res = await self._follow(u, robots=self.cfg.respect_robots, cap=self.cfg.max_bytes)
            res.url, res.attempts = str(url), attempt + 1
            wait = self._retry_wait(res, attempt)
            if wait is None:
                return res
            attempt += 1
            self.stats["retries"] += 1
            await self.sleep(wait)

    def _retry_wait(self, res: FetchResult, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None to stop."""
        retryable = (res.status in RETRYABLE and not res.final) or (res.http_status is not None and (
            res.http_status == 429 or res.http_status >= 500) and res.status.startswith("http_"))
        if not retryable or attempt >= self.cfg.retries:
            return None
        if res.retry_after is not None:
            return None if res.retry_after > self.cfg.max_retry_after else res.retry_after
        jitter = 0.5 + seeded_uniform(0, res.url, f"backoff{attempt}")
        return min(self.cfg.backoff_max, self.cfg.backoff_base * (2 ** attempt) * jitter)

    # -- one attempt: a redirect chain ----------------------------------------------
    async def _follow(self, u: URL, robots: bool, cap: int) -> FetchResult:
        seen = {str(u)}
        for hop in range(self.cfg.max_redirects + 1):
            res, location = await self._hop(u, robots, cap)
            res.redirects = hop
            if location is None:
                return res
            try:
                nxt = u.join(URL(location))
            except (ValueError, UnicodeError) as e:
                return FetchResult(url=str(u), status="bad_url", http_status=res.http_status,
                                   error=f"bad redirect location {location!r}: {e}", final_url=str(u))
            checked, status, error = check_url(str(nxt), self.cfg.max_url_length)
            if checked is None:
                return FetchResult(url=str(u), status=status, error=f"redirect: {error}", final_url=str(nxt))
            if str(checked) in seen:
                return FetchResult(url=str(u), status="redirect_loop", http_status=res.http_status,
                                   error=f"redirect loop at {checked}", final_url=str(checked), redirects=hop + 1)
            seen.add(str(checked))
            u = checked
        return FetchResult(url=str(u), status="redirect_loop", error=f"more than {self.cfg.max_redirects} redirects",
                           final_url=str(u), redirects=self.cfg.max_redirects + 1)

    async def _hop(self, u: URL, robots: bool, cap: int) -> tuple[FetchResult, str | None]:
        """Guard, robots, limits, then one request; returns (result, redirect location or None)."""
        base = FetchResult(url=str(u), status="ok", final_url=str(u))
        start = self.clock()
        try:  # the DNS wait is the first part of this request's deadline
            async with asyncio.timeout(self.cfg.timeout):
                await self.resolver.addresses(u.raw_host, u.port or 0)
        except TimeoutError as e:  # our deadline, or the shared lookup's cap (DnsTimeout)
            self.stats["dns_timeouts"] += 1
            self._account(self.clock() - start)
            base.status = "dns_timeout"
            base.error = str(e) if isinstance(e, DnsTimeout) else f"no DNS answer within {self.cfg.timeout:g}s"
            return base, None
        except PrivateAddressError as e:
            base.status, base.error = "private_address", str(e)
            return base, None
        except OSError as e:
            base.status, base.error, base.final = "connection_error", f"dns: {e}", True
            return base, None
        dns = self.clock() - start
        if robots:
            policy = await self.robots.policy(origin_key(u))
            if not policy.allowed(u.raw_path_qs):
                base.status = policy.status
                base.error = policy.reason or "disallowed by robots.txt"
                return base, None
        key = host_key(u)
        async with self._global, self.limits.semaphore(key):
            await self.limits.bucket(key).acquire()
            return await self._request(u, base, cap, dns)

    def _account(self, elapsed: float) -> None:
        self.max_request_seconds = max(self.max_request_seconds, elapsed)
        if elapsed > self.cfg.timeout + 0.25:  # should never happen: the deadline is total
            self.stats["over_deadline"] += 1

    async def _request(self, u: URL, res: FetchResult, cap: int, dns: float = 0.0) -> tuple[FetchResult, str | None]:
        """One HTTP exchange under what is left of the deadline after the DNS wait (``dns`` s)."""
        self.stats["requests"] += 1
        start = self.clock()
        budget = self.cfg.timeout - dns
        try:
            async with asyncio.timeout(budget):
                return await self._exchange(u, res, cap, start + budget)
        except DnsTimeout as e:  # cache expired while queued, lookup capped inside the connect
            res.status, res.error = "dns_timeout", str(e)
        except TimeoutError:
            res.status, res.error = "timeout", f"no complete response within {self.cfg.timeout}s"
        except PrivateAddressError as e:
            res.status, res.error = "private_address", str(e)
        except (aiohttp.ClientError, OSError) as e:
            res.status, res.error = _classify_error(e)
        finally:
            self._account(dns + self.clock() - start)
        res.body = None
        return res, None

    async def _exchange(self, u: URL, res: FetchResult, cap: int, deadline: float) -> tuple[FetchResult, str | None]:
        async with self._session.get(u, allow_redirects=False) as resp:
            res.http_status = resp.status
            res.content_type = resp.headers.get("Content-Type")
            if resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                return res, resp.headers["Location"]
            if not 200 <= resp.status < 300:
                res.status, res.error = f"http_{resp.status}", resp.reason
                res.retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                return res, None
            blocked = self._header_block(resp.headers.getall("X-Robots-Tag", []))
            if blocked:
                res.status, res.error = blocked
                return res, None
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > cap:
                res.status, res.error = "too_large", f"Content-Length {length} above cap {cap}"
                return res, None
            try:
                res.body = await self._read_body(resp, cap, deadline)
            except OverflowError:
                res.status, res.error = "too_large", f"body above cap {cap} bytes (decoded)"
            except ValueError as e:
                res.status, res.error = "http_error", str(e)
            except zlib.error as e:
                res.status, res.error = "decode_error", f"bad {resp.headers.get('Content-Encoding')} body: {e}"
            return res, None

    async def _read_body(self, resp: aiohttp.ClientResponse, cap: int, deadline: float) -> bytes:
        decoder = _Decoder(resp.headers.get("Content-Encoding", ""), cap)
        parts = []
        while True:
            chunk = await resp.content.read(CHUNK)
            if not chunk:
                break
            if self.clock() > deadline:  # data keeps coming but the time is up
                raise TimeoutError
            self.stats["bytes"] += len(chunk)
            if decoder.compressed:  # inflate (a bomb: up to the cap) in a thread, not on this loop
                parts.append(await asyncio.get_running_loop().run_in_executor(self._inflate, decoder.feed, chunk))
            else:
                parts.append(decoder.feed(chunk))
        return b"".join(parts)

    def _header_block(self, values: list[str]) -> tuple[str, str] | None:
        if not self.cfg.respect_noai or not values:
            return None
        hit = header_directives(values, self.agent_token) & {d.lower() for d in self.cfg.disallowed_header_directives}
        if not hit:
            return None
        reason = "noai" if hit & set(NOAI) else "robots"
        return reason, f"X-Robots-Tag: {', '.join(sorted(hit))}"

    async def _fetch_robots(self, url: str) -> tuple[int | None, bytes | None, str | None]:
        self.stats["robots_fetches"] += 1
        res = await self._follow(URL(url), robots=False, cap=self.cfg.robots_max_bytes)
        if res.status == "ok":
            return res.http_status, res.body, None
        if res.status.startswith("http_"):
            return res.http_status, None, res.error
        return None, None, res.status


def _classify_error(e: BaseException) -> tuple[str, str]:
    """Map a client exception to (status, error text)."""
    cur: BaseException | None = e
    while cur is not None:
        if isinstance(cur, PrivateAddressError):
            return "private_address", str(cur)
        if isinstance(cur, DnsTimeout):
            return "dns_timeout", str(cur)
        cur = getattr(cur, "os_error", None) or cur.__cause__
    if isinstance(e, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return "timeout", str(e) or type(e).__name__
    if isinstance(e, aiohttp.TooManyRedirects):
        return "redirect_loop", str(e)
    if isinstance(e, aiohttp.InvalidURL):
        return "bad_url", str(e)
    return "connection_error", f"{type(e).__name__}: {e}"


async def fetch(url: str, cfg: DownloadConfig, resolve_fn: ResolveFn | None = None) -> FetchResult:
    """One-shot convenience: fetch ``url`` with a fresh Fetcher (tests, scripts)."""
    async with Fetcher(cfg, resolve_fn=resolve_fn) as f:
        return await f.fetch(url)
