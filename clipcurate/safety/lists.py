"""Reading the lists an organisation hands over, and their identity for the manifest.

In: a list spec, ``name=path`` or a bare path (local, or any filesystem Beam reads).  Out:
``(name, lines)`` plus an identity dict ``{"name", "kind", "file", "sha256", "bytes",
"entries"}``.  ``file`` is the file name only: no absolute path (nor host or user) goes into
the manifest; the sha256 says which version of the list was applied.

A list file is UTF-8 text, one entry a line; blank lines and ``#`` comments are skipped.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any

from clipcurate.sinks.files import read_bytes

_INLINE_COMMENT = re.compile(r"\s+#.*$")  # " # note" after an entry (a URL's own '#' has no space before it)


def parse_spec(spec: str) -> tuple[str, str]:
    """``"name=path"`` -> (name, path); a bare path is named by its file name."""
    name, sep, path = spec.partition("=")
    if sep and name and "/" not in name and "\\" not in name:
        return name, path
    return base_name(spec), spec


def base_name(path: str) -> str:
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def read_list(spec: str, kind: str) -> tuple[str, list[str], dict[str, Any]]:
    """``(name, entry lines, identity)`` of one list; a missing file raises FileNotFoundError
    naming the spec."""
    name, path = parse_spec(spec)
    try:
        data = read_bytes(path)
    except (OSError, IOError) as e:
        raise FileNotFoundError(f"safety list {spec!r}: cannot read {path!r} ({e})") from None
    except Exception as e:  # noqa: BLE001 - Beam's filesystems raise their own errors
        raise FileNotFoundError(f"safety list {spec!r}: cannot read {path!r} ({e})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"safety list {spec!r}: not UTF-8 text ({e})") from None
    lines = []
    for line in text.splitlines():
        line = "" if line.lstrip().startswith("#") else _INLINE_COMMENT.sub("", line).strip()
        if line:
            lines.append(line)
    identity = {"name": name, "kind": kind, "file": base_name(path),
                "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "entries": len(lines)}
    return name, lines, identity


def read_lists(specs: list[str], kind: str) -> tuple[list[tuple[str, list[str]]], list[dict[str, Any]]]:
    """``([(name, entry lines)], [identity])`` of several lists of one kind, in order."""
    named, identities = [], []
    for spec in specs:
        name, lines, identity = read_list(spec, kind)
        named.append((name, lines))
        identities.append(identity)
    return named, identities


def check_names(specs: list[str], where: str) -> None:
    """Raise ValueError when two lists of one kind share a name (rejects would be ambiguous)."""
    seen: dict[str, str] = {}
    for spec in specs:
        name, _ = parse_spec(spec)
        if name in seen:
            raise ValueError(f"{where}: two lists named {name!r} ({seen[name]!r}, {spec!r}); "
                             f"name them with name=path")
        seen[name] = spec


def file_identity(path: str, kind: str, name: str | None = None) -> dict[str, Any]:
    """Identity of a model or other file: name, file name, sha256, bytes."""
    data = read_bytes(path)
    return {"name": name or base_name(path), "kind": kind, "file": base_name(path),
            "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
