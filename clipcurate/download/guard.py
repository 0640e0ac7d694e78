"""SSRF guard: resolve a host, refuse non-public addresses, hand aiohttp only checked ones.

:class:`GuardedResolver` is given to aiohttp's connector, so the socket connects to exactly
the addresses that passed :func:`address_allowed` (a DNS answer that changes between the
check and the connect -- rebinding -- cannot slip through: there is no second lookup).
Every resolved address must pass; one private address in the answer refuses the host.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Awaitable, Callable, Iterable

from aiohttp.abc import AbstractResolver

LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
LOOPBACK_V6 = ipaddress.ip_address("::1")
NAT64 = ipaddress.ip_network("64:ff9b::/96")

# resolve(host, port) -> list of IP address strings
ResolveFn = Callable[[str, int], Awaitable[list[str]]]


class PrivateAddressError(OSError):
    """The host resolves to an address we refuse (message names host and address)."""


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


async def system_resolve(host: str, port: int) -> list[str]:
    """All addresses of ``host`` from the OS resolver (getaddrinfo), in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        if sockaddr[0] not in seen:
            seen.append(sockaddr[0])
    return seen


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that checks every address; ``overrides`` act like /etc/hosts.

    ``resolve_fn`` is the lookup hook (default :func:`system_resolve`); tests map
    their hostnames to 127.0.0.1 through ``overrides`` or their own ``resolve_fn``.
    """

    def __init__(self, allow_loopback: bool = False, overrides: dict[str, str] | None = None,
                 resolve_fn: ResolveFn | None = None):
        self.allow_loopback = allow_loopback
        self.overrides = {k.lower(): v for k, v in (overrides or {}).items()}
        self.resolve_fn = resolve_fn or system_resolve

    async def addresses(self, host: str, port: int) -> list[str]:
        """Checked addresses of ``host``; raises PrivateAddressError or OSError."""
        host = host.lower().rstrip(".")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if _is_literal(host):
            addrs = [host]
        elif host in self.overrides:
            addrs = [self.overrides[host]]
        else:
            addrs = await self.resolve_fn(host, port)
        if not addrs:
            raise OSError(f"{host}: no address")
        for a in addrs:
            if not address_allowed(a, self.allow_loopback):
                raise PrivateAddressError(f"{host} resolves to refused address {a}")
        return addrs

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        addrs = await self.addresses(host, port)
        return [{"hostname": host, "host": a, "port": port,
                 "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST} for a in addrs]

    async def close(self) -> None:
        return None


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        return False
