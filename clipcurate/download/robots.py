"""robots.txt per origin (RFC 9309) and X-Robots-Tag directives.

robots.txt is fetched once per canonical origin (concurrent callers share one fetch),
parsed in a worker thread (never on the fetch loop) under a time budget, and only the
group for our agent is kept (``*`` when no group names us).  Matching does not scan the
rules: plain rules are looked up by the URL path's prefixes (one dict lookup per distinct
rule length), wildcard rules (``*``, ``$``) are one regex of alternatives ordered longest
first, so the first match is the most specific rule.  Longest match wins, Allow wins ties.

RFC 9309 outcomes: 2xx -> parse; 4xx -> everything allowed; 5xx or unreachable ->
everything disallowed (status ``robots`` for 5xx; for a transport failure the transport
status, e.g. ``timeout``, since the host is unreachable).  A robots.txt whose parse
passes the budget or that has more than MAX_WILDCARD rules for us disallows everything.
Policies are kept in an LRU cache bounded by their estimated size in bytes.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import re
import time
from typing import Awaitable, Callable
from urllib.parse import quote, unquote

# fetch_robots(url) -> (http_status or None, body bytes or None, error or None); without an
# http status, ``error`` is the transport status (timeout, connection_error, private_address...)
RobotsFetch = Callable[[str], Awaitable[tuple[int | None, bytes | None, str | None]]]

MAX_WILDCARD = 2000
_SAFE = "/?=&;:@!$'()*+,~-._"
TRANSPORT = ("timeout", "connection_error", "private_address", "dns_timeout")


class RobotsTooComplex(ValueError):
    """robots.txt over the parse budget or the wildcard-rule limit."""


def normalize(path: str) -> str:
    """Percent-encoding normalised path (RFC 9309 2.2.2): the same form for rules and URLs."""
    return quote(unquote(path), safe=_SAFE)


class RobotsRules:
    """One agent's Allow/Disallow rules; ``allowed(path_and_query)``."""

    def __init__(self, rules: list[tuple[bool, str]]):
        plain: dict[str, bool] = {}
        wild: list[tuple[int, bool, str]] = []
        for allow, path in rules:
            if "*" in path or path.endswith("$"):
                wild.append((len(path), allow, path))
            else:
                plain[path] = plain.get(path, False) or allow  # Allow wins a tie
        if len(wild) > MAX_WILDCARD:
            raise RobotsTooComplex(f"{len(wild)} wildcard rules (limit {MAX_WILDCARD})")
        self.plain = plain
        self.lengths = sorted({len(p) for p in plain}, reverse=True)
        wild.sort(key=lambda w: (-w[0], not w[1]))  # longest first, Allow first among equals
        self.wild = [(n, allow) for n, allow, _ in wild]
        self.regex = re.compile("|".join(f"({_pattern(p)})" for _, _, p in wild)) if wild else None
        self.nbytes = 400 + sum(len(p) + 120 for p in plain) + sum(3 * len(p) + 300 for _, _, p in wild)

    def allowed(self, path: str) -> bool:
        path = normalize(path or "/")
        best, allow = -1, True
        for n in self.lengths:  # longest plain rule that prefixes the path
            if n <= len(path) and path[:n] in self.plain:
                best, allow = n, self.plain[path[:n]]
                break
        if self.regex is not None:
            m = self.regex.match(path)
            if m is not None:
                n, wallow = self.wild[m.lastindex - 1]
                if n > best or (n == best and wallow):
                    best, allow = n, wallow
        return allow


def _pattern(path: str) -> str:
    end = path.endswith("$")
    body = re.sub(r"\*+", "*", path[:-1] if end else path)
    return ".*".join(re.escape(part) for part in body.split("*")) + (r"\Z" if end else "")


def parse_robots(body: bytes, agent_token: str, budget: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> RobotsRules:
    """The rules of the group(s) for ``agent_token`` (else ``*``); raises RobotsTooComplex."""
    deadline = clock() + budget
    agent = agent_token.lower()
    mine: list[tuple[bool, str]] = []
    star: list[tuple[bool, str]] = []
    named, agents, in_rules = False, set(), False
    for i, raw in enumerate(body.decode("utf-8", "replace").splitlines()):
        if i % 2048 == 0 and clock() > deadline:
            raise RobotsTooComplex(f"parse took longer than {budget:g}s")
        line = raw.split("#", 1)[0].strip()
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "user-agent":
            if in_rules:
                agents, in_rules = set(), False
            agents.add(value.split("/", 1)[0].strip().lower())
        elif key in ("allow", "disallow") and agents:
            in_rules = True
            if not value:  # "Disallow:" = nothing disallowed
                continue
            if not value.startswith(("/", "*")):
                value = "/" + value
            rule = (key == "allow", normalize(value))
            if agent in agents:
                named = True
                mine.append(rule)
            if "*" in agents:
                star.append(rule)
    rules = RobotsRules(mine if named else star)
    if clock() > deadline:
        raise RobotsTooComplex(f"parse took longer than {budget:g}s")
    return rules


class RobotsPolicy:
    """Outcome of one origin's robots.txt: rules, allow-all, or disallow-all with a reason."""

    def __init__(self, rules: RobotsRules | None, allow_all: bool, reason: str = "", status: str = "robots"):
        self.rules, self.allow_all, self.reason, self.status = rules, allow_all, reason, status
        self.nbytes = rules.nbytes if rules is not None else 200

    def allowed(self, path: str) -> bool:
        """``path``: the URL's path and query (``/a/b?c``)."""
        if self.rules is None:
            return self.allow_all
        return path == "/robots.txt" or self.rules.allowed(path)


def policy_from_response(status: int | None, body: bytes | None, error: str | None,
                         agent_token: str = "*", budget: float = 2.0) -> RobotsPolicy:
    """Build the policy from a robots.txt fetch outcome (see module doc); CPU-bound for 2xx."""
    if status is not None and 200 <= status < 300 and body is not None:
        try:
            return RobotsPolicy(parse_robots(body, agent_token, budget), True)
        except RobotsTooComplex as e:
            return RobotsPolicy(None, False, f"robots.txt not usable: {e}")
    if status is not None and 400 <= status < 500:
        return RobotsPolicy(None, True)
    if status is None:  # transport failure: the host itself is unreachable, say so
        transport = error if error in TRANSPORT else "robots"
        return RobotsPolicy(None, False, f"robots.txt unreachable: {error}", status=transport)
    return RobotsPolicy(None, False, f"robots.txt unreachable (http {status})")


class RobotsCache:
    """Per-origin policies; ``policy(origin)`` fetches ``origin/robots.txt`` once while cached.

    Parsing runs in ``executor`` (a thread); finished policies are evicted least recently
    used first once their sizes pass ``max_bytes``.  A ``dns_timeout`` outcome is not kept.
    """

    def __init__(self, fetch_robots: RobotsFetch, agent_token: str = "*", max_bytes: int = 64 << 20,
                 parse_seconds: float = 2.0, executor: concurrent.futures.Executor | None = None):
        self.fetch_robots, self.agent_token = fetch_robots, agent_token
        self.max_bytes, self.parse_seconds, self.executor = max_bytes, parse_seconds, executor
        self._tasks: collections.OrderedDict[str, asyncio.Future] = collections.OrderedDict()
        self.fetches = self.evictions = self.nbytes = 0

    async def policy(self, origin: str) -> RobotsPolicy:
        task = self._tasks.get(origin)
        if task is None:
            task = self._tasks[origin] = asyncio.ensure_future(self._load(origin))
        self._tasks.move_to_end(origin)
        return await asyncio.shield(task)

    async def _load(self, origin: str) -> RobotsPolicy:
        self.fetches += 1
        try:
            status, body, error = await self.fetch_robots(origin + "/robots.txt")
            if status is not None and 200 <= status < 300:
                policy = await asyncio.get_running_loop().run_in_executor(
                    self.executor, policy_from_response, status, body, error, self.agent_token, self.parse_seconds)
            else:
                policy = policy_from_response(status, body, error, self.agent_token)
        except BaseException:
            self._tasks.pop(origin, None)
            raise
        if policy.status == "dns_timeout":
            self._tasks.pop(origin, None)
            return policy
        self.nbytes += policy.nbytes
        self._evict(keep=origin)
        return policy

    def _evict(self, keep: str) -> None:
        for origin in list(self._tasks):
            if self.nbytes <= self.max_bytes:
                return
            task = self._tasks[origin]
            if origin == keep or not task.done() or task.cancelled() or task.exception() is not None:
                continue
            del self._tasks[origin]
            self.nbytes -= task.result().nbytes
            self.evictions += 1


def header_directives(values: list[str], agent_token: str) -> set[str]:
    """Directives of X-Robots-Tag header values that apply to ``agent_token``.

    ``"noai, noimageai"`` applies to everyone; ``"otherbot: noindex"`` only to otherbot.
    ``none`` is shorthand for ``noindex, nofollow`` (and is expanded so).
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
    if "none" in out:
        out |= {"noindex", "nofollow"}
    return out
