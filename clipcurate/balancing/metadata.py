"""Build a MetaCLIP metadata list: WordNet lemmas, corpus n-grams, and user lists.

Sources, in this fixed order (an entry is credited to the first source that has it):

1. ``wordnet``: every lemma name of every synset in the WordNet 3.0 ``data.noun``,
   ``data.verb``, ``data.adj``, ``data.adv`` files (Debian package ``wordnet-base``),
   ``_`` -> space, adjective markers ``(a) (p) (ip)`` removed, case kept.
2. ``unigram``: corpus tokens with count >= ``min_count`` (MetaCLIP: 100).
3. ``bigram``: adjacent token pairs with PMI >= ``min_pmi`` (MetaCLIP: 30), where
   ``PMI = log2(c(w1 w2) * N / (c(w1) * c(w2)))`` and N is the number of tokens
   (NLTK's ``BigramAssocMeasures.pmi``, which MetaCLIP used).
4. ``list:<file>``: plain text (one entry per line) or JSON array files, in the order given.

Corpus tokens come from MetaCLIP's ``spacing`` of each text split on whitespace; a
token counts only if it is a word (letters/digits, inner ``' - & _`` allowed), so each
n-gram entry is matchable exactly where it occurred.  Counting runs as a Beam pipeline.

Output: a JSON array of unique strings (MetaCLIP's format), each source sorted
(Python string order) and concatenated, plus ``<output stem>.stats.json``.
"""
from __future__ import annotations

import json
import math
import re
import string
import unicodedata
from pathlib import Path
from typing import Callable, Iterable, Iterator

from clipcurate.balancing.entries import MetadataError
from clipcurate.balancing.matching import SPACED_CHARS, spacing

WORDNET_DIR = "/usr/share/wordnet"
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
WORDNET_INSTALL_HINT = ("install the WordNet 3.0 database with `apt-get install -y --no-install-recommends "
                        "wordnet-base` (Debian/Ubuntu: files under /usr/share/wordnet), or pass --wordnet-dir "
                        "to a folder holding data.noun, data.verb, data.adj, data.adv")
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")
_WORD = re.compile(r"^\w(?:[\w'&-]*\w)?$")
_PUNCT = set(string.punctuation)
MAX_TOKEN_CHARS = 64


# -- WordNet ------------------------------------------------------------------------------

def parse_wordnet_line(line: str) -> list[str]:
    """Lemma names of one ``data.*`` line (``[]`` for license/header lines)."""
    if not line or line.startswith(" "):
        return []
    fields = line.split(" ")
    count = int(fields[3], 16)
    words = fields[4:4 + 2 * count:2]
    return [_ADJ_MARKER.sub("", w).replace("_", " ") for w in words]


def wordnet_lemmas(wordnet_dir: str = WORDNET_DIR) -> list[str]:
    """Sorted unique lemma names of all synsets; MetadataError with an install hint if files are missing."""
    folder = Path(wordnet_dir)
    missing = [f for f in WORDNET_FILES if not (folder / f).is_file()]
    if missing:
        raise MetadataError(f"WordNet files {missing} not found in {folder}: {WORDNET_INSTALL_HINT}")
    lemmas: set[str] = set()
    for name in WORDNET_FILES:
        with open(folder / name, encoding="utf-8", errors="strict") as f:
            for lineno, line in enumerate(f, 1):
                try:
                    lemmas.update(parse_wordnet_line(line))
                except (IndexError, ValueError) as e:
                    raise MetadataError(f"{folder / name}:{lineno}: not a WordNet data line ({e})") from e
    return sorted(lemmas)


# -- corpus n-grams -------------------------------------------------------------------------

def is_word(token: str) -> bool:
    """Letters/digits with inner ``' - & _`` allowed; combining marks (Thai tone marks, Devanagari vowel
    signs, ...) count as part of a word."""
    if len(token) > MAX_TOKEN_CHARS:
        return False
    if _WORD.match(token):
        return True
    bare = "".join(ch for ch in token if not unicodedata.category(ch).startswith("M"))
    return bare != token and bool(_WORD.match(bare))


def tokenize(text: str) -> list[str | None]:
    """Tokens of ``text`` as the matcher sees them; non-word tokens become None (they break bigrams)."""
    return [t if is_word(t) else None for t in spacing(text).split()]


def ngram_events(text: str, segment: Callable[[str], list[str]] | None = None) -> Iterator[tuple[str, object]]:
    """``("u", word)`` per word token and ``("b", (w1, w2))`` per adjacent word pair of ``text``.

    With ``segment`` (a word segmenter for an unspaced script, :mod:`clipcurate.balancing.segmenters`)
    the words are its pieces and a bigram is ``(w1, w2, sep)``, ``sep`` being " " where the text had
    whitespace between them and "" otherwise (the entry is ``w1 + sep + w2``).
    """
    if not isinstance(text, str):
        return
    if segment is not None:
        from clipcurate.balancing.segmenters import segment_events
        yield from segment_events(text, segment, is_word)
        return
    toks = tokenize(text)
    for i, tok in enumerate(toks):
        if tok is None:
            continue
        yield "u", tok
        if i + 1 < len(toks) and toks[i + 1] is not None:
            yield "b", (tok, toks[i + 1])


def pmi(c12: int, c1: int, c2: int, n: int) -> float:
    """Pointwise mutual information (log2) of a bigram from its count, its words' counts and N tokens."""
    return math.log2(c12) + math.log2(n) - math.log2(c1) - math.log2(c2)


# -- lists and merging --------------------------------------------------------------------

def read_list_file(path: str) -> list[str]:
    """Entries of a user list: a JSON array of strings (``*.json``) or one entry per line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MetadataError(f"list file {path}: cannot read it ({e})") from e
    if not path.endswith(".json"):
        return text.splitlines()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise MetadataError(f"list file {path}: not valid JSON ({e})") from e
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MetadataError(f"list file {path}: expected a JSON array of strings")
    return value


def clean_entry(entry: str) -> str | None:
    """Stripped entry, or None if empty, pure punctuation, or holding a tab/newline (never matchable)."""
    entry = entry.strip()
    if not entry or all(c in _PUNCT for c in entry) or any(c in entry for c in SPACED_CHARS):
        return None
    return entry


def merge_sources(sources: list[tuple[str, Iterable[str]]]) -> tuple[list[str], dict]:
    """Concatenate sources (each sorted, cleaned) keeping first occurrences; return entries and per-source stats."""
    seen: set[str] = set()
    entries: list[str] = []
    stats: dict[str, dict[str, int]] = {}
    for name, items in sources:
        raw = list(items)
        cleaned = sorted({c for c in map(clean_entry, raw) if c is not None})
        new = [e for e in cleaned if e not in seen]
        seen.update(new)
        entries.extend(new)
        stats[name] = {"candidates": len(raw), "unique_clean": len(cleaned), "added": len(new),
                       "dropped_blank_or_punct": sum(1 for r in raw if clean_entry(r) is None)}
    return entries, stats


def write_metadata(entries: list[str], stats: dict, output: str) -> str:
    """Write the JSON list to ``output`` and stats to ``<stem>.stats.json`` (temp file, then rename)."""
    out = Path(output)
    stats_path = out.with_name(out.stem + ".stats.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, value in ((out, entries), (stats_path, stats)):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(value, ensure_ascii=False, indent=None if path == out else 1), encoding="utf-8")
        tmp.replace(path)
    return str(stats_path)


def build_metadata(output: str, *, wordnet_dir: str | None = None, corpus: Iterable[str] = (),
                   caption_col: str = "caption", min_count: int = 100, min_pmi: float = 30.0,
                   min_bigram_count: int = 1, lists: Iterable[str] = (),
                   beam_args: list[str] | None = None) -> dict:
    """Build the metadata JSON at ``output`` from the chosen sources; return the stats written beside it."""
    sources: list[tuple[str, Iterable[str]]] = []
    stats: dict = {"params": {"wordnet_dir": wordnet_dir, "corpus": list(corpus), "caption_col": caption_col,
                              "min_count": min_count, "min_pmi": min_pmi, "min_bigram_count": min_bigram_count,
                              "lists": list(lists)}}
    if wordnet_dir:
        sources.append(("wordnet", wordnet_lemmas(wordnet_dir)))
    if corpus:
        from clipcurate.balancing.ngrams import corpus_ngrams
        uni, bi, stats["corpus"] = corpus_ngrams(list(corpus), caption_col, min_count, min_pmi, min_bigram_count,
                                                 work_dir=f"{output}.ngrams-tmp", beam_args=beam_args)
        sources += [("unigram", uni), ("bigram", bi)]
    for path in lists:
        sources.append((f"list:{path}", read_list_file(path)))
    if not sources:
        raise MetadataError("build-metadata: nothing to build; give --wordnet, --corpus and/or --list")
    entries, stats["sources"] = merge_sources(sources)
    if not entries:
        raise MetadataError(f"build-metadata: the sources gave no usable entry ({stats['sources']})")
    stats["entries"] = len(entries)
    stats["output"] = output
    stats["stats_file"] = write_metadata(entries, stats, output)
    return stats
