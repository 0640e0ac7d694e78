"""Process-wide network guard: refuse (and record) any connection outside loopback.

``NetworkGuard().install()`` wraps ``socket.socket.connect`` / ``connect_ex``,
``socket.create_connection`` and ``socket.getaddrinfo``: connecting to anything outside
127.0.0.0/8 or ::1, or resolving a name other than localhost, raises
:class:`NetworkGuardError` before a packet leaves and is appended to ``violations``.
c-ares (aiodns) sends its own packets from C, so its lookups are checked too: a lookup of
a non-local name through a resolver with a non-loopback name server is refused.
Used by tests/conftest.py for the whole test session and by the download benchmark
(processes forked after ``install`` inherit it).
"""
from __future__ import annotations

import ipaddress
import socket

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback",
                socket.gethostname().lower()}  # this machine's own name resolves locally


class NetworkGuardError(ConnectionRefusedError):
    """A test tried to reach a non-loopback address (or resolve a non-local name)."""


class NetworkGuard:
    def __init__(self):
        self.violations: list[str] = []
        self.installed = False

    def check_host(self, host, what: str) -> None:
        if _is_loopback(host):
            return
        self.violations.append(f"{what} {host!r}")
        raise NetworkGuardError(f"network guard: {what} {host!r} refused (tests may only reach loopback)")

    def install(self) -> None:
        if self.installed:
            return
        orig_connect, orig_connect_ex = socket.socket.connect, socket.socket.connect_ex
        orig_create, orig_gai = socket.create_connection, socket.getaddrinfo
        guard = self

        def connect(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                guard.check_host(address[0], "connect to")
            return orig_connect(sock, address)

        def connect_ex(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                guard.check_host(address[0], "connect to")
            return orig_connect_ex(sock, address)

        def create_connection(address, *args, **kwargs):
            guard.check_host(address[0], "connect to")
            return orig_create(address, *args, **kwargs)

        def getaddrinfo(host, *args, **kwargs):
            if host is not None:
                name = host.decode() if isinstance(host, bytes) else str(host)
                if name.lower() not in _LOCAL_NAMES:
                    guard.check_host(name, "resolve")
            return orig_gai(host, *args, **kwargs)

        socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
        socket.create_connection, socket.getaddrinfo = create_connection, getaddrinfo
        self._guard_aiodns()
        self.installed = True

    def _guard_aiodns(self) -> None:
        try:
            import aiodns
        except ImportError:
            return
        guard = self

        def wrap(orig):
            def checked(resolver, name, *args, **kwargs):
                text = name.decode() if isinstance(name, bytes) else str(name)
                if text.lower() not in _LOCAL_NAMES and not _is_loopback(text):
                    for server in resolver.nameservers or ["<system resolver>"]:
                        host = server.rsplit(":", 1)[0] if server.count(":") == 1 else server
                        if not _is_loopback(host):
                            guard.check_host(text, f"resolve (via DNS server {server!r})")
                return orig(resolver, name, *args, **kwargs)
            return checked

        for method in ("getaddrinfo", "query", "gethostbyname"):
            if hasattr(aiodns.DNSResolver, method):
                setattr(aiodns.DNSResolver, method, wrap(getattr(aiodns.DNSResolver, method)))


def _is_loopback(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host.lower() in _LOCAL_NAMES
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback



GUARD = NetworkGuard()
