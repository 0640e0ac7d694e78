"""robots.txt per host (RFC 9309) and X-Robots-Tag directives.

robots.txt is fetched once per host (concurrent callers share one fetch) and parsed
with :mod:`urllib.robotparser`.  RFC 9309: 2xx -> parse; 4xx -> everything allowed;
5xx or unreachable -> everything disallowed (status ``robots`` for 5xx; for a
transport failure the transport status, e.g. ``timeout``, since the host is unreachable).
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable
from urllib.robotparser import RobotFileParser

# fetch_robots(url) -> (http_status or None, body bytes or None, error or None); without an
# http status, ``error`` is the transport status (timeout, connection_error, private_address...)
RobotsFetch = Callable[[str], Awaitable[tuple[int | None, bytes | None, str | None]]]


class RobotsPolicy:
    """Outcome of one host's robots.txt: a parser, allow-all, or disallow-all with a reason."""

    def __init__(self, parser: RobotFileParser | None, allow_all: bool, reason: str = "", status: str = "robots"):
        self.parser, self.allow_all, self.reason, self.status = parser, allow_all, reason, status

    def allowed(self, user_agent: str, url: str) -> bool:
        if self.parser is None:
            return self.allow_all
        return self.parser.can_fetch(user_agent, url)


def policy_from_response(status: int | None, body: bytes | None, error: str | None) -> RobotsPolicy:
    """Build the policy from a robots.txt fetch outcome (see module doc)."""
    if status is not None and 200 <= status < 300 and body is not None:
        parser = RobotFileParser()
        parser.parse(body.decode("utf-8", "replace").splitlines())
        return RobotsPolicy(parser, True)
    if status is not None and 400 <= status < 500:
        return RobotsPolicy(None, True)
    if status is None:  # transport failure: the host itself is unreachable, say so
        transport = error if error in ("timeout", "connection_error", "private_address") else "robots"
        return RobotsPolicy(None, False, f"robots.txt unreachable: {error}", status=transport)
    return RobotsPolicy(None, False, f"robots.txt unreachable (http {status})")


class RobotsCache:
    """Per-host policies; ``policy(origin)`` fetches ``origin/robots.txt`` at most once."""

    def __init__(self, fetch_robots: RobotsFetch):
        self.fetch_robots = fetch_robots
        self._tasks: dict[str, asyncio.Future] = {}
        self.fetches = 0

    async def policy(self, origin: str) -> RobotsPolicy:
        if origin not in self._tasks:
            self._tasks[origin] = asyncio.ensure_future(self._load(origin))
        return await asyncio.shield(self._tasks[origin])

    async def _load(self, origin: str) -> RobotsPolicy:
        self.fetches += 1
        status, body, error = await self.fetch_robots(origin + "/robots.txt")
        return policy_from_response(status, body, error)


def header_directives(values: list[str], agent_token: str) -> set[str]:
    """Directives of X-Robots-Tag header values that apply to ``agent_token``.

    ``"noai, noimageai"`` applies to everyone; ``"otherbot: noindex"`` only to otherbot.
    """
    out: set[str] = set()
    agent = agent_token.lower()
    for value in values:
        scope = None
        for part in value.split(","):
            part = part.strip().lower()
            if ":" in part:
                head, rest = part.split(":", 1)
                if head.strip() not in ("unavailable_after",) and " " not in head.strip():
                    scope, part = head.strip(), rest.strip()
            if part and (scope is None or scope == agent):
                out.add(part)
    return out
