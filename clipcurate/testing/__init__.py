"""Test helpers shipped with the package: the hostile loopback web (:mod:`.hostile_web`)."""
from clipcurate.testing.hostile_web import HOSTNAMES, HostileWeb, start_subprocess

__all__ = ["HOSTNAMES", "HostileWeb", "start_subprocess"]
