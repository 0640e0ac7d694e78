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

Worldwide mode (MetaCLIP 2, ``script_padding=True``): the space on each side of an entry
is left out when the entry's first (last) character is in an unspaced script (CJK
ideographs, kana, Thai, Lao, Khmer, Burmese, Tibetan) or is punctuation, so ``猫``
matches in ``我喜欢猫。``; the caption is spaced exactly as above.  Unlike MetaCLIP 2's
``is_cjk_or_similar`` we also count Hiragana/Katakana as unspaced (theirs pads kana
entries, so ``東京タワー`` could not match ``東京タワーの夜景``).

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


# (first, last) code points of the scripts written without spaces between words.
UNSPACED_RANGES = (
    (0x0E00, 0x0E7F), (0x0E80, 0x0EFF), (0x0F00, 0x0FFF), (0x1000, 0x109F), (0x1780, 0x17FF),  # th lo bo my km
    (0x2E80, 0x2FDF), (0x2FF0, 0x2FFF), (0x3040, 0x30FF), (0x31F0, 0x31FF), (0x3400, 0x4DBF),  # radicals, kana
    (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0xFF66, 0xFF9F), (0x20000, 0x2EBEF),  # ideographs, half-width kana
)
# CJK punctuation treated like ASCII punctuation (an entry ending in it is not padded).
CJK_PUNCT = frozenset("，。、；：？！“”‘’（）【】《》〈〉「」『』～—・")
_ASCII_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def is_unspaced_char(ch: str) -> bool:
    """True for a character of an unspaced script or a punctuation mark (MetaCLIP 2's no-padding rule)."""
    if ch in _ASCII_PUNCT or ch in CJK_PUNCT:
        return True
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in UNSPACED_RANGES)


def pad_entry(entry: str, script_padding: bool = False) -> str:
    """The string searched for in a spaced caption: ``" e "``, or (``script_padding``) without the
    space next to an unspaced-script or punctuation character."""
    if not script_padding:
        return f" {entry} "
    left = "" if is_unspaced_char(entry[0]) else " "
    right = "" if is_unspaced_char(entry[-1]) else " "
    return f"{left}{entry}{right}"


def is_matchable(entry: str) -> bool:
    """False when an entry can never match a spaced caption (it holds a wrapped or spaced character)."""
    return _UNMATCHABLE.search(entry) is None


class Matcher:
    """Aho-Corasick matcher over ``entries`` (built once; ~2 s and ~250 MiB for 500k entries).

    ``match(caption)`` returns the sorted ids of the entries whose space-padded form
    occurs in ``spacing(caption)``.  Picklable (pyahocorasick pickles its trie), but in
    Beam it is built per worker process from the metadata file (see ``transforms.py``).
    """

    def __init__(self, entries: list[str], script_padding: bool = False):
        self.num_entries = len(entries)
        index = active_entries(entries)
        self.num_active = len(index)
        self._automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        if script_padding:
            for entry, i in index.items():
                key = pad_entry(entry, True)
                if self._automaton.get(key, None) is None:  # "a" and " a"-less twins: first id wins
                    self._automaton.add_word(key, i)
        else:
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


def match_reference(caption: str, entries: list[str], script_padding: bool = False) -> list[int]:
    """Plain-Python reference: the literal definition, one ``in`` test per active entry.

    O(len(entries)) per caption; use it to check :class:`Matcher` on small samples.
    """
    spaced = spacing(caption)
    return sorted(i for e, i in active_entries(entries).items() if pad_entry(e, script_padding) in spaced)


class WorldwideMatcher:
    """One :class:`Matcher` per metadata language, built lazily on the first caption of that language.

    ``entries_by_lang`` maps a metadata language to its entries; ids are global: the
    languages in sorted order, each language's entries at ``offsets[lang] + local id``.
    ``match(caption, lang)`` matches ``caption`` against ``lang``'s entries only (MetaCLIP 2
    padding rule) and returns sorted global ids.
    """

    def __init__(self, entries_by_lang: dict[str, list[str]]):
        self._entries = entries_by_lang
        self.offsets: dict[str, int] = {}
        n = 0
        for lang in sorted(entries_by_lang):
            self.offsets[lang] = n
            n += len(entries_by_lang[lang])
        self.num_entries = n
        self._matchers: dict[str, Matcher] = {}

    def matcher(self, lang: str) -> Matcher:
        m = self._matchers.get(lang)
        if m is None:
            m = self._matchers[lang] = Matcher(self._entries[lang], script_padding=True)
        return m

    def loaded_languages(self) -> list[str]:
        return sorted(self._matchers)

    def match(self, caption: str, lang: str) -> list[int]:
        """Sorted global ids of ``lang``'s entries found in ``caption``; KeyError for a language without metadata."""
        local = self.matcher(lang).match(caption)
        off = self.offsets[lang]
        return [off + i for i in local] if off else local
