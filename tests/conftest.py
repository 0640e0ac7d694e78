"""Shared test setup: a process-wide network guard and the hostile loopback web.

The guard (installed when pytest configures, so for every test file) wraps
``socket.socket.connect`` / ``connect_ex``, ``socket.create_connection`` and
``socket.getaddrinfo``.  Connecting to anything outside 127.0.0.0/8 or ::1 raises
:class:`NetworkGuardError` *before* a packet leaves, and so does a DNS lookup of a name
other than ``localhost`` or an IP literal.  Every attempt is recorded, and the autouse
fixture fails the test that made it -- even when the code under test swallowed the
error.  So a broken SSRF guard can never send traffic anywhere.  (Worker processes that
Beam spawns do not inherit the patch; tests that need the guard run in process.)

Fixtures for any test file: ``hostile_web`` (session-scoped :class:`HostileWeb` on
127.0.0.1, random port, serving ../shared/data/open-images-cc-test-images),
``loopback_download_config`` (factory of a DownloadConfig that may reach it) and
``network_guard`` (the recorded attempts, for tests that probe the guard itself).
"""
from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
IMAGES = DATA / "open-images-cc-test-images"
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class NetworkGuardError(ConnectionRefusedError):
    """A test tried to reach a non-loopback address (or resolve a non-local name)."""


class _Guard:
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


GUARD = _Guard()


def pytest_configure(config):
    GUARD.install()


@pytest.fixture(autouse=True)
def _fail_on_network_escape():
    before = len(GUARD.violations)
    yield
    escaped = GUARD.violations[before:]
    if escaped:
        del GUARD.violations[before:]
        pytest.fail(f"network guard: test tried to leave loopback: {escaped}")


@pytest.fixture
def network_guard():
    """The guard; a test that probes it on purpose must empty ``violations`` it caused."""
    return GUARD


@pytest.fixture(scope="session")
def hostile_web():
    """The hostile loopback web (clipcurate.testing.HostileWeb) serving the real photos."""
    from clipcurate.testing import HostileWeb

    if not IMAGES.is_dir():
        pytest.skip(f"test images not found at {IMAGES} (clone the repo next to shared/)")
    with HostileWeb([IMAGES]) as web:
        yield web


@pytest.fixture
def loopback_download_config(hostile_web):
    """Factory: DownloadConfig that may reach the hostile web, with short deadlines."""
    from clipcurate.download.config import DownloadConfig

    def make(**overrides):
        base = dict(allow_loopback=True, host_overrides=hostile_web.host_overrides(), timeout=1.5,
                    retries=1, backoff_base=0.02, backoff_max=0.1, max_retry_after=2.0,
                    max_bytes=5_000_000, concurrency=32, per_host_concurrency=16)
        return DownloadConfig(**(base | overrides))

    return make
