"""Input listing and lineage names: what the outputs call an input file.

No path of the machine may reach an output byte, so each input file gets a *source* name:
its path relative to the fixed (glob-free) prefix of the pattern that matched it
(``/data/cc/*.warc.gz`` + ``/data/cc/a.warc.gz`` -> ``a.warc.gz``; ``data/**`` keeps
sub-directories; a file named without a glob -> its base name).  Remote files (``gs://``,
``s3://``...) are named the same way; their URL goes into the manifest only.  When two
patterns give the same name to different files, each of those names is prefixed with
``input<i>/``, ``i`` the index of the first pattern that matched the file.
"""
from __future__ import annotations

import os
import re

from apache_beam.io.filesystems import FileSystems

_GLOB = re.compile(r"[*?\[]")


def is_remote(path: str) -> bool:
    return "://" in path


def _absolute(pattern: str) -> str:
    """A local pattern made absolute (Beam does not match a bare relative glob like '*.csv')."""
    if is_remote(pattern):
        return pattern
    trailing = "/" if pattern.endswith(("/", os.sep)) else ""
    return os.path.abspath(os.path.expanduser(pattern)) + trailing


def fixed_prefix(pattern: str) -> str:
    """The pattern up to the last '/' before its first glob character (the whole
    directory part for a pattern without glob)."""
    pattern = pattern.replace("\\", "/")
    m = _GLOB.search(pattern)
    head = pattern[:m.start()] if m else pattern
    return head[:head.rfind("/") + 1]


def relative_name(path: str, prefix: str) -> str:
    """``path`` relative to ``prefix`` with '/' separators (the base name if it is not under it)."""
    path = path.replace("\\", "/")
    if prefix and path.startswith(prefix) and len(path) > len(prefix):
        return path[len(prefix):]
    return path.rstrip("/").rsplit("/", 1)[-1]


def expand_inputs(patterns: list[str]) -> list[tuple[str, str, int]]:
    """``(path, source, size in bytes)`` of every file the patterns name, sorted by source,
    without repeats.  Raises ValueError naming the pattern when one matches nothing or
    cannot be listed, or when there is no pattern."""
    if not patterns:
        raise ValueError("ingest: no inputs given (set ingest.inputs / --input)")
    found: dict[str, tuple[int, str, int]] = {}  # path -> (pattern index, relative name, size)
    for i, pattern in enumerate(patterns):
        full = _absolute(pattern)
        try:
            metas = FileSystems.match([full])[0].metadata_list
        except Exception as e:  # noqa: BLE001 - Beam raises BeamIOError with per-pattern detail
            raise ValueError(f"ingest: cannot list input {pattern!r}: {e}") from e
        if not metas:
            raise ValueError(f"ingest: input {pattern!r} matches no file")
        prefix = fixed_prefix(full)
        for m in metas:
            found.setdefault(m.path, (i, relative_name(m.path, prefix), m.size_in_bytes))
    names: dict[str, set[str]] = {}
    for path, (_, rel, _) in found.items():
        names.setdefault(rel, set()).add(path)
    out = [(path, rel if len(names[rel]) == 1 else f"input{i}/{rel}", size)
           for path, (i, rel, size) in found.items()]
    return sorted(out, key=lambda f: (f[1], f[0]))
