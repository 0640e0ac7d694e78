"""Column paths into nested rows (JSON objects, Parquet structs and lists).

A path is dot-separated keys with optional list steps: ``meta.url`` (a key inside an
object), ``texts[0]`` (one list item), ``images[*].src`` (every item: one candidate per
item).  The first key is the top-level column and is matched like a plain column name
(exact, case-insensitive, aliases: :func:`clipcurate.ingest.rows.find_column`); the other
keys are exact.  A top-level name that exists literally (a column called ``a.b``) wins.

All paths of one read that hold ``[*]`` must expand the same list; paths without ``[*]``
are read from the row and repeated for every item.  A missing key or index gives None
(then ``missing_url`` / ``missing_caption``); a ``[*]`` on something that is not a list
is a malformed row.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from clipcurate.ingest.rows import find_column

EACH = "[*]"
_SEGMENT = re.compile(r"^([^\[\]]+)((?:\[(?:\*|-?\d+)\])*)$")
_BRACKET = re.compile(r"\[(\*|-?\d+)\]")

Step = Any  # str key, int index, or EACH


def parse_path(text: str) -> tuple[Step, ...]:
    """``"a.b[*].c"`` -> ``("a", "b", EACH, "c")``.  Raises ValueError on bad syntax."""
    steps: list[Step] = []
    for seg in text.split("."):
        m = _SEGMENT.match(seg)
        if not m:
            raise ValueError(f"bad column path {text!r}: write keys separated by '.', "
                             f"with optional [N] or [*] after a key (e.g. images[*].url)")
        steps.append(m.group(1))
        steps += [EACH if b == "*" else int(b) for b in _BRACKET.findall(m.group(2))]
    if steps.count(EACH) > 1:
        raise ValueError(f"bad column path {text!r}: at most one [*] per path")
    return tuple(steps)


def is_nested(text: str) -> bool:
    return "." in text or "[" in text


def get(value: Any, steps: Sequence[Step]) -> Any:
    """The value at ``steps`` inside ``value``, or None when a key or index is missing."""
    for step in steps:
        if isinstance(step, str):
            if not isinstance(value, dict):
                return None
            value = value.get(step)
        else:
            if not isinstance(value, list) or not -len(value) <= step < len(value):
                return None
            value = value[step]
    return value


class NotAList(ValueError):
    """A ``[*]`` step met something other than a list (a malformed row)."""


@dataclass(frozen=True)
class RowPaths:
    """The url, caption and extra paths of one read, resolved against the top-level columns.

    ``columns``: the top-level columns to read.  :meth:`rows` turns one row (a dict of
    top-level values) into ``(url, caption, extra)`` triples, one per ``[*]`` item."""
    url: tuple[Step, ...]
    caption: tuple[Step, ...]
    extras: tuple[tuple[str, tuple[Step, ...]], ...]
    each: tuple[Step, ...] | None  # the expanded list's path, when any path holds [*]

    @property
    def flat(self) -> bool:
        """True when every path is one top-level column (no nesting, no expansion)."""
        return all(len(s) == 1 for s in (self.url, self.caption, *(s for _, s in self.extras)))

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys([self.url[0], self.caption[0], *(s[0] for _, s in self.extras)]))

    def rows(self, row: dict[str, Any]) -> list[tuple[Any, Any, dict[str, Any] | None]]:
        if self.each is None:
            extra = {name: get(row, s) for name, s in self.extras} or None
            return [(get(row, self.url), get(row, self.caption), extra)]
        items = get(row, self.each)
        if items is None:
            return []
        if not isinstance(items, list):
            raise NotAList(f"{_show(self.each)} holds {type(items).__name__}, not a list")
        return [(self._at(row, item, self.url), self._at(row, item, self.caption),
                 {name: self._at(row, item, s) for name, s in self.extras} or None) for item in items]

    def _at(self, row, item, steps):
        if EACH in steps:
            return get(item, steps[steps.index(EACH) + 1:])
        return get(row, steps)


def resolve_paths(url_col: str, caption_col: str, extra_cols: Sequence[str], available: Sequence[str],
                  where: str) -> RowPaths:
    """RowPaths for the configured columns; raises ValueError naming ``where`` when a
    top-level column is missing or two paths expand different lists."""
    def one(text: str, role: str) -> tuple[Step, ...]:
        if text in available or not is_nested(text):
            return (find_column(text, available, where, role),)
        steps = parse_path(text)
        head = find_column(steps[0], available, where, role) if steps[0] not in available else steps[0]
        return (head, *steps[1:])

    url, cap = one(url_col, "url"), one(caption_col, "caption")
    extras = tuple((name if is_nested(name) else steps[0], steps)  # a plain column keeps its own name
                   for name, steps in ((n, one(n, "extra")) for n in extra_cols))
    lists = {s[:s.index(EACH)] for s in [url, cap, *(s for _, s in extras)] if EACH in s}
    if len(lists) > 1:
        raise ValueError(f"{where}: column paths expand different lists "
                         f"({', '.join(sorted(_show(p) for p in lists))}); [*] may name one list only")
    return RowPaths(url, cap, extras, next(iter(lists)) if lists else None)


def _show(steps: Sequence[Step]) -> str:
    out = ""
    for s in steps:
        out += s if s is EACH else f"[{s}]" if isinstance(s, int) else f".{s}" if out else s
    return out
