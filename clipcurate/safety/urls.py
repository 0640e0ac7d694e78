"""URL and domain rules: blocklists and opt-out lists, matched on text before any download.

In: rule lines (see below) and candidate URLs.  Out: the name of the first list whose rule
matches a URL (and the rule), or None.  Cost per URL: one parse, one set lookup per host
label (domain rules), one registered-domain lookup, one set lookup (exact) and the prefix
rules of that host only; independent of the number of rules.

Rule lines (one a line; ``#`` comments):

* ``https://host/path?q`` or ``url:...``: that exact URL (scheme, default port, fragment and
  host case ignored; path and query compared as written).
* ``host`` or ``domain:host``: the host and every subdomain (``example.com`` blocks
  ``cdn.example.com``, not ``badexample.com``).
* ``registered:host``: every host with the same registered domain (eTLD+1 by the Public
  Suffix List, private section included, so ``registered:a.blogspot.com`` blocks
  ``x.a.blogspot.com`` but not ``b.blogspot.com``), from tldextract's bundled snapshot (no
  network fetch).
* ``https://host/path*`` or ``prefix:https://host/path``: every URL starting with that
  (host-normalised) prefix.

A line that is none of these raises ValueError naming the list and the line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from clipcurate.schemas.uid import DEFAULT_PORTS

_EXTRACT = None


def registered_domain(host: str) -> str:
    """eTLD+1 of a host by the bundled Public Suffix List (private domains included); the host
    itself when it has no registrable part (an IP address, a bare suffix, ``localhost``)."""
    global _EXTRACT
    if _EXTRACT is None:
        import tldextract
        # suffix_list_urls=(): the snapshot inside the wheel, never a network fetch; no disk cache
        _EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)
    r = _EXTRACT(host)
    return r.top_domain_under_public_suffix or host


def canonical_host(host: str) -> str:
    """Lower-case IDNA (punycode) host without trailing dot."""
    host = host.strip().rstrip(".").lower()
    if not host or host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def url_parts(url: str) -> tuple[str, str] | None:
    """``(host, host + port + path + query)``: the scheme-less key rules compare, or None when
    the URL has no host or cannot be parsed."""
    try:
        parts = urlsplit(url.strip())
        host = canonical_host(parts.hostname or "")
        port = parts.port
    except ValueError:
        return None
    if not host:
        return None
    netloc = host if ":" not in host else f"[{host}]"
    if port is not None and port != DEFAULT_PORTS.get(parts.scheme.lower()):
        netloc += f":{port}"
    key = netloc + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return host, key


@dataclass
class UrlRules:
    """The rules of several named lists, merged into lookup tables (first list wins on ties)."""
    exact: dict[str, tuple[str, str]] = field(default_factory=dict)      # url key -> (list, rule)
    domains: dict[str, tuple[str, str]] = field(default_factory=dict)    # host -> (list, rule)
    registered: dict[str, tuple[str, str]] = field(default_factory=dict)  # eTLD+1 -> (list, rule)
    prefixes: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # host -> [(prefix, list, rule)]

    def __len__(self) -> int:
        return len(self.exact) + len(self.domains) + len(self.registered) + sum(map(len, self.prefixes.values()))

    def add(self, list_name: str, line: str) -> None:
        rule, kind, value = line, None, line
        for tag in ("url:", "domain:", "registered:", "prefix:"):
            if line.lower().startswith(tag):
                kind, value = tag[:-1], line[len(tag):].strip()
                break
        if kind is None:
            if "://" in line:
                kind = "prefix" if line.endswith("*") else "url"
                value = line.rstrip("*") if kind == "prefix" else line
            else:
                kind = "domain"
        if kind == "prefix" and value.endswith("*"):
            value = value.rstrip("*")
        if kind in ("domain", "registered"):
            if "/" in value or " " in value or not value.strip("."):
                raise ValueError(f"list {list_name!r}: rule {line!r} is not a host name")
            host = canonical_host(value.lstrip("*").lstrip("."))  # "*.example.com" = example.com and below
            table = self.domains if kind == "domain" else self.registered
            table.setdefault(host if kind == "domain" else registered_domain(host), (list_name, rule))
            return
        parts = url_parts(value if "://" in value else "http://" + value)
        if parts is None:
            raise ValueError(f"list {list_name!r}: rule {line!r} is not a URL")
        host, key = parts
        if kind == "url":
            self.exact.setdefault(key, (list_name, rule))
        else:  # "prefix:http://host" (no path) has key "host/": every URL on that host and port
            self.prefixes.setdefault(host, []).append((key, list_name, rule))

    def match(self, url: str | None) -> tuple[str, str] | None:
        """``(list name, rule)`` of the matching rule, or None (a URL without a host never matches)."""
        parts = url_parts(url) if url else None
        if parts is None:
            return None
        host, key = parts
        hit = self.exact.get(key)
        if hit:
            return hit
        if self.domains:
            labels = host.split(".")
            for i in range(len(labels)):
                hit = self.domains.get(".".join(labels[i:]))
                if hit:
                    return hit
        if self.registered:
            hit = self.registered.get(registered_domain(host))
            if hit:
                return hit
        for prefix, list_name, rule in self.prefixes.get(host, ()):
            if key.startswith(prefix):
                return list_name, rule
        return None


def build_rules(named_lines: list[tuple[str, list[str]]]) -> UrlRules:
    """Rules from ``[(list name, lines), ...]``, in the given order."""
    rules = UrlRules()
    for name, lines in named_lines:
        for line in lines:
            rules.add(name, line)
    return rules
