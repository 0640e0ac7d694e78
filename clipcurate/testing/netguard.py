"""Process-wide network guard: refuse (and record) any connection outside loopback.

``NetworkGuard().install()`` wraps ``socket.socket.connect`` / ``connect_ex``,
``socket.create_connection`` and ``socket.getaddrinfo``: connecting to anything outside
127.0.0.0/8 or ::1, or resolving a name other than localhost, raises
:class:`NetworkGuardError` before a packet leaves and is appended to ``violations``.
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
        self.installed = True


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
