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
The guard lives in :mod:`clipcurate.testing.netguard`.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from clipcurate.testing.netguard import GUARD
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
IMAGES = DATA / "open-images-cc-test-images"


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
