"""MetaCLIP substring matching: which metadata entries occur in a caption.

Semantics (identical to MetaCLIP's ``substr_matching.spacing`` + Aho-Corasick):

* the caption is *spaced*: padded with one space on each side, each of the
  characters ``, . ; : ? ! ` `` is wrapped in spaces, and ``\\t \\n \\r`` become spaces;
* entry ``e`` matches when ``" " + e + " "`` is a substring of the spaced caption;
* matching is **case-sensitive** (MetaCLIP does not lowercase: ``Dog`` does not match
  ``dog``) and nothing else is normalised (no Unicode folding, runs of spaces are kept,
  other punctuation such as ``' " - ( ) /`` is part of the word it touches).

Consequences worth knowing: ``"cat."`` matches ``cat`` (the dot is spaced off) but
``"cat's"`` and ``"(cat)"`` do not; an entry that itself contains one of the wrapped
characters (``"St. Louis"``) can never match; ``"a  dog"`` (two spaces) does not match
``a dog``.

Entry ids are positions in the metadata list.  Entries that are empty or only
whitespace, and later copies of a duplicated entry, are *inactive*: they never
match (see :func:`active_entries`).
"""
from __future__ import annotations

import operator
import re

try:
    import ahocorasick
except ImportError as _e:  # pragma: no cover - dependency is declared in pyproject
    raise ImportError("clipcurate.balancing needs pyahocorasick: pip install 'pyahocorasick>=2,<3'") from _e

WRAPPED_PUNCT = (",", ".", ";", ":", "?", "!", "`")
SPACED_CHARS = ("\t", "\n", "\r")
_VALUE = operator.itemgetter(1)  # (end index, entry id) -> entry id
_UNMATCHABLE = re.compile("[" + re.escape("".join(WRAPPED_PUNCT + SPACED_CHARS)) + "]")


def spacing(text: str) -> str:
    """Pad ``text`` with spaces, wrap MetaCLIP's punctuation in spaces, turn tabs/newlines into spaces."""
    spaced = f" {text} "
    for p in WRAPPED_PUNCT:
        spaced = spaced.replace(p, f" {p} ")
    for c in SPACED_CHARS:
        spaced = spaced.replace(c, " ")
    return spaced


def active_entries(entries: list[str]) -> dict[str, int]:
    """Map each matchable entry string to its id: skips blank entries and later duplicates."""
    index: dict[str, int] = {}
    for i, e in enumerate(entries):
        if e not in index:
            if not isinstance(e, str):
                raise TypeError(f"metadata entry {i} is {type(e).__name__}, expected str: {e!r}")
            if e.strip():
                index[e] = i
    return index


def is_matchable(entry: str) -> bool:
    """False when an entry can never match a spaced caption (it holds a wrapped or spaced character)."""
    return _UNMATCHABLE.search(entry) is None


class Matcher:
    """Aho-Corasick matcher over ``entries`` (built once; ~2 s and ~250 MiB for 500k entries).

    ``match(caption)`` returns the sorted ids of the entries whose space-padded form
    occurs in ``spacing(caption)``.  Picklable (pyahocorasick pickles its trie), but in
    Beam it is built per worker process from the metadata file (see ``transforms.py``).
    """

    def __init__(self, entries: list[str]):
        self.num_entries = len(entries)
        index = active_entries(entries)
        self.num_active = len(index)
        self._automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for entry, i in index.items():
            self._automaton.add_word(f" {entry} ", i)
        if self.num_active:
            self._automaton.make_automaton()

    def match(self, caption: str) -> list[int]:
        """Sorted, unique ids of the entries found in ``caption`` (MetaCLIP semantics)."""
        if not self.num_active:
            return []
        return sorted(set(map(_VALUE, self._automaton.iter(spacing(caption)))))

    def memory_bytes(self) -> int:
        """Size of the automaton's trie as reported by pyahocorasick."""
        return int(self._automaton.get_stats()["total_size"])


def match_reference(caption: str, entries: list[str]) -> list[int]:
    """Plain-Python reference: the literal definition, one ``in`` test per active entry.

    O(len(entries)) per caption; use it to check :class:`Matcher` on small samples.
    """
    spaced = spacing(caption)
    return sorted(i for e, i in active_entries(entries).items() if f" {e} " in spaced)
