"""SSRF guard: resolve a host, refuse non-public addresses, hand aiohttp only checked ones.

:class:`GuardedResolver` is given to aiohttp's connector, so the socket connects to exactly
the addresses that passed :func:`address_allowed` (a DNS answer that changes between the
check and the connect -- rebinding -- cannot slip through: there is no second lookup).
Every resolved address must pass; one private address in the answer refuses the host.

Name resolution never blocks other hosts: the default lookup is c-ares through aiodns
(asynchronous, no thread per lookup; without aiodns, a dedicated thread pool).  Lookups
are shared per host (one in flight however many requests wait), capped at
``lookup_timeout`` and cached for the run: answers for ``ttl`` seconds, failures and
timeouts for ``negative_ttl`` seconds, at most ``max_entries`` hosts (LRU).  Each waiter
bounds its own wait with its request deadline (see :mod:`.fetch`).
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import inspect
import ipaddress
import socket
import time
from typing import Awaitable, Callable, Iterable

from aiohttp.abc import AbstractResolver

LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
LOOPBACK_V6 = ipaddress.ip_address("::1")
NAT64 = ipaddress.ip_network("64:ff9b::/96")

# resolve(host, port) -> list of IP address strings
ResolveFn = Callable[[str, int], Awaitable[list[str]]]


class PrivateAddressError(OSError):
    """The host resolves to an address we refuse (message names host and address)."""


class DnsTimeout(TimeoutError):
    """No DNS answer for the host within the lookup cap (status ``dns_timeout``)."""


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_allowed(addr: str, allow_loopback: bool = False) -> bool:
    """True if ``addr`` (an IPv4/IPv6 literal) is a public unicast address.

    Refused: loopback, private, link-local, multicast, reserved, unspecified, shared
    (100.64/10) and anything else that is not globally routable, also when embedded in
    an IPv6 address (v4-mapped, 6to4, Teredo, NAT64).  ``allow_loopback`` permits
    127.0.0.0/8 and ::1 only.  Unparseable input is refused.
    """
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            return address_allowed(str(inner), allow_loopback)
        if ip == LOOPBACK_V6:
            return allow_loopback
    elif ip in LOOPBACK_V4:
        return allow_loopback
    bad = (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
           or ip.is_reserved or ip.is_unspecified or not ip.is_global)
    return not bad


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """``["name=ip", ...]`` -> ``{name: ip}`` (names lowercased)."""
    out = {}
    for item in items:
        name, ip = item.split("=", 1)
        out[name.strip().lower()] = ip.strip()
    return out


_THREADS: concurrent.futures.ThreadPoolExecutor | None = None


async def system_resolve(host: str, port: int) -> list[str]:
    """All addresses of ``host`` from the OS resolver (getaddrinfo), in its order.  Runs in a
    dedicated pool of 32 threads (not the loop's default executor); only used without aiodns."""
    global _THREADS
    if _THREADS is None:
        _THREADS = concurrent.futures.ThreadPoolExecutor(32, thread_name_prefix="dl-dns")
    infos = await asyncio.get_running_loop().run_in_executor(
        _THREADS, lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP))
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        if sockaddr[0] not in seen:
            seen.append(sockaddr[0])
    return seen


def ares_resolver(nameservers: list[str] | None = None, timeout: float = 10.0) -> ResolveFn | None:
    """A ResolveFn on c-ares (aiodns), or None when aiodns is not installed.  ``nameservers``:
    ``"ip"`` or ``"ip:port"`` (default: /etc/resolv.conf).  Created lazily in the running loop."""
    try:
        import aiodns
    except ImportError:
        return None
    state: dict = {}

    async def resolve(host: str, port: int) -> list[str]:
        if "r" not in state:
            state["r"] = aiodns.DNSResolver(nameservers=list(nameservers or []) or None, timeout=timeout, tries=2)
        try:
            res = await state["r"].getaddrinfo(host, port=port or None, type=socket.SOCK_STREAM)
        except aiodns.error.DNSError as e:
            code, msg = (e.args + (None, str(e)))[:2]
            if code == aiodns.error.ARES_ETIMEOUT:
                raise DnsTimeout(f"{host}: {msg}") from None
            raise OSError(f"{host}: {msg}") from None
        seen: list[str] = []
        for node in res.nodes:
            a = node.addr[0].decode() if isinstance(node.addr[0], bytes) else node.addr[0]
            if a not in seen:
                seen.append(a)
        return seen

    async def close() -> None:
        if "r" in state:  # cancels what is pending: no c-ares callback after the loop ends
            r = state.pop("r")
            done = r.close() if hasattr(r, "close") else r.cancel()
            if inspect.isawaitable(done):
                await done

    resolve.close = close
    return resolve


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that checks every address; ``overrides`` act like /etc/hosts.

    ``resolve_fn`` is the lookup hook (default: c-ares via :func:`ares_resolver` on
    ``nameservers``, else :func:`system_resolve`); tests map their hostnames to 127.0.0.1
    through ``overrides``, their own ``resolve_fn`` or the hostile web's DNS server.
    Lookups are shared, capped and cached (module doc); ``stats`` counts them.
    """

    def __init__(self, allow_loopback: bool = False, overrides: dict[str, str] | None = None,
                 resolve_fn: ResolveFn | None = None, *, nameservers: list[str] | None = None,
                 lookup_timeout: float = 10.0, ttl: float = 300.0, negative_ttl: float = 30.0,
                 max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.allow_loopback = allow_loopback
        self.overrides = {k.lower(): v for k, v in (overrides or {}).items()}
        self.resolve_fn = resolve_fn or ares_resolver(nameservers, lookup_timeout) or system_resolve
        self.lookup_timeout, self.ttl, self.negative_ttl = lookup_timeout, ttl, negative_ttl
        self.max_entries, self.clock = max_entries, clock
        self._cache: collections.OrderedDict[str, tuple[float, list[str] | BaseException]] = collections.OrderedDict()
        self._inflight: dict[str, asyncio.Future] = {}
        self.stats: collections.Counter[str] = collections.Counter()

    async def addresses(self, host: str, port: int) -> list[str]:
        """Checked addresses of ``host``; raises PrivateAddressError, DnsTimeout or OSError."""
        host = host.lower().rstrip(".")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if _is_literal(host):
            addrs = [host]
        elif host in self.overrides:
            addrs = [self.overrides[host]]
        else:
            addrs = await self._lookup(host, port)
        if not addrs:
            raise OSError(f"{host}: no address")
        for a in addrs:
            if not address_allowed(a, self.allow_loopback):
                raise PrivateAddressError(f"{host} resolves to refused address {a}")
        return addrs

    async def _lookup(self, host: str, port: int) -> list[str]:
        """Cached answer, or a share of the one lookup in flight for ``host``."""
        hit = self._cache.get(host)
        if hit is not None and hit[0] > self.clock():
            self._cache.move_to_end(host)
            if isinstance(hit[1], BaseException):
                self.stats["dns_negative_hits"] += 1
                raise type(hit[1])(*hit[1].args)
            self.stats["dns_cache_hits"] += 1
            return hit[1]
        fut = self._inflight.get(host)
        if fut is None:
            fut = self._inflight[host] = asyncio.ensure_future(self._resolve_once(host, port))
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())  # no "never retrieved"
        return list(await asyncio.shield(fut))  # a waiter's deadline does not cancel the lookup

    async def _resolve_once(self, host: str, port: int) -> list[str]:
        self.stats["dns_lookups"] += 1
        try:
            try:
                async with asyncio.timeout(self.lookup_timeout):
                    answer: list[str] | BaseException = list(await self.resolve_fn(host, port))
            except TimeoutError:
                answer = DnsTimeout(f"{host}: no DNS answer within {self.lookup_timeout:g}s")
            except OSError as e:
                answer = e
            if isinstance(answer, DnsTimeout):
                self.stats["dns_lookup_timeouts"] += 1
            self._cache[host] = (self.clock() + (self.negative_ttl if isinstance(answer, BaseException) else self.ttl),
                                 answer)
            self._cache.move_to_end(host)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        finally:
            self._inflight.pop(host, None)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        addrs = await self.addresses(host, port)
        return [{"hostname": host, "host": a, "port": port,
                 "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST} for a in addrs]

    async def close(self) -> None:
        for fut in list(self._inflight.values()):
            fut.cancel()
        close = getattr(self.resolve_fn, "close", None)
        if close is not None:
            await close()


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        return False
