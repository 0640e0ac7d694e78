"""Read and check a MetaCLIP metadata file (the list of entries to match).

Formats: a ``.json`` file holds one JSON array of strings (MetaCLIP's
``metadata.json``) or, for worldwide curation (MetaCLIP 2), one JSON object mapping a
metadata language to its array (``{"en": [...], "zh": [...], "other": [...]}``); global
entry ids then run over the languages in sorted order.  Any other file holds one entry per line (UTF-8, ``\\n`` or
``\\r\\n``; a final newline does not add an entry).  Entry ids are positions in
that list.  Files are read through Beam's ``FileSystems`` (local paths, gs://, ...).

Bad files raise :class:`MetadataError` naming the file: unreadable, not UTF-8, not
JSON, not a list, a non-string item (with its index), no entries, or no usable entry.
Blank entries and duplicates are not errors: they stay in the id space but never
match, and are counted in :class:`Metadata`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from clipcurate.balancing.matching import active_entries, is_matchable


class MetadataError(ValueError):
    """The metadata file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Metadata:
    """A loaded metadata file: ``entries`` (ids are positions) and what was found in it."""
    path: str
    sha256: str
    entries: list[str] = field(repr=False)
    num_blank: int = 0          # empty or whitespace-only: never match
    num_duplicate: int = 0      # later copies of an entry: never match (the first copy does)
    num_unmatchable: int = 0    # hold one of , . ; : ? ! ` or a tab/newline: can never match
    languages: dict[str, list[str]] | None = field(default=None, repr=False)  # worldwide: entries per language

    @property
    def worldwide(self) -> bool:
        return self.languages is not None

    def offsets(self) -> dict[str, tuple[int, int]]:
        """Worldwide: ``{lang: (first global id, number of entries)}`` in sorted language order."""
        out, n = {}, 0
        for lang in sorted(self.languages or {}):
            out[lang] = (n, len(self.languages[lang]))
            n += len(self.languages[lang])
        return out

    @property
    def num_active(self) -> int:
        return len(self.entries) - self.num_blank - self.num_duplicate

    def summary(self) -> dict:
        """JSON-able description for the manifest."""
        out = {"metadata": self.path, "sha256": self.sha256, "entries": len(self.entries),
               "active_entries": self.num_active, "blank_entries": self.num_blank,
               "duplicate_entries": self.num_duplicate, "unmatchable_entries": self.num_unmatchable}
        if self.worldwide:
            out["worldwide"] = True
            out["language_entries"] = {lang: len(v) for lang, v in sorted(self.languages.items())}
        return out


def read_bytes(path: str) -> bytes:
    """Whole file through Beam FileSystems; MetadataError if it cannot be opened."""
    from apache_beam.io.filesystems import FileSystems
    try:
        with FileSystems.open(path, compression_type="uncompressed") as f:
            return f.read()
    except Exception as e:  # noqa: BLE001 - any IO failure becomes one clear error
        raise MetadataError(f"metadata file {path}: cannot read it ({type(e).__name__}: {e})") from e


def is_worldwide_file(path: str) -> bool:
    """True when ``path`` is a ``.json`` file whose value is an object (worldwide metadata); reads a few bytes."""
    if not path.endswith(".json"):
        return False
    from apache_beam.io.filesystems import FileSystems
    try:
        with FileSystems.open(path, compression_type="uncompressed") as f:
            head = f.read(4096)
    except Exception as e:  # noqa: BLE001 - any IO failure becomes one clear error
        raise MetadataError(f"metadata file {path}: cannot read it ({type(e).__name__}: {e})") from e
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


def parse_entries(data: bytes, path: str) -> list[str]:
    """Entries from file bytes (JSON array for ``*.json``, else one per line); a worldwide object is flattened."""
    value = parse_metadata(data, path)
    if isinstance(value, dict):
        return flatten_languages(value)
    return value


def flatten_languages(languages: dict[str, list[str]]) -> list[str]:
    """All entries of a worldwide object in global id order (languages sorted)."""
    return [e for lang in sorted(languages) for e in languages[lang]]


def parse_metadata(data: bytes, path: str) -> list[str] | dict[str, list[str]]:
    """A list of entries, or (worldwide JSON object) a dict language -> entries."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MetadataError(f"metadata file {path}: not UTF-8 ({e})") from e
    if path.endswith(".json"):
        entries = _parse_json(text, path)
    else:
        entries = text.split("\n")
        if entries and entries[-1] == "":
            entries.pop()
        entries = [e[:-1] if e.endswith("\r") else e for e in entries]
    if not entries:
        raise MetadataError(f"metadata file {path}: has no entries")
    return entries


def _parse_json(text: str, path: str) -> list[str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise MetadataError(f"metadata file {path}: not valid JSON ({e})") from e
    if isinstance(value, dict):
        if not value:
            raise MetadataError(f"metadata file {path}: the language object is empty")
        for lang, items in value.items():
            if not isinstance(lang, str) or not lang or lang != lang.strip().lower():
                raise MetadataError(f"metadata file {path}: language key {lang!r} must be a lower-case code like 'en'")
            _check_list(items, path, f"[{lang!r}]")
        return value
    _check_list(value, path, "")
    return value


def _check_list(value, path: str, where: str) -> None:
    if not isinstance(value, list):
        raise MetadataError(f"metadata file {path}{where}: expected a JSON array of strings, got {type(value).__name__}")
    for i, v in enumerate(value):
        if not isinstance(v, str):
            raise MetadataError(f"metadata file {path}{where}: item {i} is {type(v).__name__} ({v!r:.60}), "
                                f"expected a string")


def load_metadata(path: str) -> Metadata:
    """Read, check and describe the metadata file at ``path``."""
    data = read_bytes(path)
    value = parse_metadata(data, path)
    languages = value if isinstance(value, dict) else None
    groups = [value[lang] for lang in sorted(value)] if languages else [value]
    entries = flatten_languages(value) if languages else value
    if not entries:
        raise MetadataError(f"metadata file {path}: has no entries")
    n_active = n_blank = n_unmatchable = 0
    for group in groups:  # duplicates are per language: "猫" may be in zh and ja
        active = active_entries(group)
        n_active += len(active)
        n_blank += sum(1 for e in group if not e.strip())
        n_unmatchable += len(active) - sum(map(is_matchable, active))
    if not n_active:
        raise MetadataError(f"metadata file {path}: all {len(entries)} entries are empty or whitespace")
    return Metadata(path=path, sha256=hashlib.sha256(data).hexdigest(), entries=entries,
                    num_blank=n_blank, num_duplicate=len(entries) - n_blank - n_active,
                    num_unmatchable=n_unmatchable, languages=languages)
