"""Build worldwide (MetaCLIP 2 style) metadata: one entry list per language, as one JSON object.

Sources per language, merged in this order (each cleaned and sorted, first occurrence wins,
duplicates are per language):

1. ``wordnet`` (``en`` only): WordNet 3.0 lemma names (:func:`~clipcurate.balancing.metadata.wordnet_lemmas`).
2. ``wordfreq``: words of the ``wordfreq`` package's ``best`` list for the language with Zipf
   frequency >= ``min_zipf`` (per-language cut-offs allowed); words holding a digit other than
   a lone digit are skipped (wordfreq folds multi-digit numbers to ``0``s, which never occur).
   wordfreq folds case, so these entries are lower case.  MetaCLIP 2 uses Wikipedia unigram
   counts instead; wordfreq is a blend of Wikipedia, subtitles, news, web text and more.
3. ``pythainlp`` (``th`` only, wordfreq has no Thai): PyThaiNLP's Thai word list.
4. ``unigram`` / ``bigram``: corpus n-grams of the language's own corpus (``lang:glob``, the Beam
   builder of :mod:`clipcurate.balancing.ngrams`, count >= ``min_count``, PMI >= ``min_pmi``);
   zh, ja and th texts are cut by word segmenters (jieba, Janome, PyThaiNLP), and their bigrams
   join without a space where the text had none.
5. ``list:<file>``: user lists per language (``lang:path``).

Output: ``{"en": [...], "ja": [...], ...}`` with sorted keys, plus ``<stem>.stats.json``
holding per-language, per-source numbers.  Deterministic: same sources and versions ->
same bytes (the package versions are recorded in the stats).
"""
from __future__ import annotations

import json
import re
from importlib import metadata as _pkg
from pathlib import Path
from typing import Iterable

from clipcurate.balancing.entries import MetadataError
from clipcurate.balancing.metadata import merge_sources, read_list_file, wordnet_lemmas

DEFAULT_MIN_ZIPF = 3.0  # about one occurrence per million words
_FOLDED_NUMBER = re.compile(r"\d.|.\d")
INSTALL_HINT = "worldwide metadata needs the 'worldwide' extra: pip install 'clipcurate[worldwide]' ({})"


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as e:
        raise MetadataError(INSTALL_HINT.format(f"{module} is missing: {e}")) from e


def wordfreq_languages() -> list[str]:
    """Languages of wordfreq's ``best`` lists (42 in wordfreq 3.1)."""
    return sorted(_require("wordfreq").available_languages("best"))


def wordfreq_words(lang: str, min_zipf: float = DEFAULT_MIN_ZIPF) -> list[str]:
    """Words of ``lang`` with Zipf frequency >= ``min_zipf`` (no folded multi-digit numbers)."""
    wordfreq = _require("wordfreq")
    try:
        freqs = wordfreq.get_frequency_dict(lang, "best")
    except LookupError as e:
        raise MetadataError(f"wordfreq has no word list for {lang!r}; it has {', '.join(wordfreq_languages())}") from e
    cut = 10 ** (min_zipf - 9)
    return [w for w, f in freqs.items() if f >= cut and not _FOLDED_NUMBER.search(w)]


def thai_words() -> list[str]:
    """PyThaiNLP's bundled Thai word list."""
    _require("pythainlp")
    from pythainlp.corpus import thai_words as _thai
    return list(_thai())


def _version(dist: str) -> str | None:
    try:
        return _pkg.version(dist)
    except _pkg.PackageNotFoundError:
        return None


def parse_zipf(items: Iterable[str], default: float) -> tuple[float, dict[str, float]]:
    """``["3.5", "ja:3.0"]`` -> (3.5, {"ja": 3.0}); a bare number sets the default."""
    per: dict[str, float] = {}
    for item in items:
        lang, sep, value = str(item).rpartition(":")
        try:
            z = float(value)
        except ValueError:
            raise MetadataError(f"--min-zipf {item!r}: expected NUMBER or LANG:NUMBER") from None
        if sep:
            per[lang] = z
        else:
            default = z
    return default, per


def _per_lang(items: Iterable[str], flag: str) -> dict[str, list[str]]:
    """``["ja:a.txt", "ja:b.txt"]`` -> ``{"ja": ["a.txt", "b.txt"]}``."""
    out: dict[str, list[str]] = {}
    for item in items:
        lang, sep, path = str(item).partition(":")
        if not sep or not lang or not path:
            raise MetadataError(f"{flag} {item!r}: expected LANG:FILE")
        out.setdefault(lang.strip().lower(), []).append(path)
    return out


def build_worldwide_metadata(output: str, languages: Iterable[str], *, min_zipf: float = DEFAULT_MIN_ZIPF,
                             min_zipf_per_lang: dict[str, float] | None = None, wordnet_dir: str | None = None,
                             lists: Iterable[str] = (), other: Iterable[str] = (), corpus: Iterable[str] = (),
                             caption_col: str = "caption", min_count: int = 100, min_pmi: float = 30.0,
                             min_bigram_count: int = 1, beam_args: list[str] | None = None) -> dict:
    """Write the worldwide metadata object to ``output`` (and stats beside it); return the stats.

    ``languages``: codes to build from wordfreq (``th`` comes from PyThaiNLP; ``"all"`` = every
    wordfreq language plus ``th``).  ``lists``: ``lang:path`` user lists (a language may come
    only from lists).  ``other``: list files merged into the ``"other"`` language.  ``corpus``:
    ``lang:glob`` text/Parquet corpora, one n-gram pipeline per language (a language may come only
    from its corpus).
    """
    langs = set()
    for code in languages:
        langs.update(wordfreq_languages() + ["th"] if code == "all" else [code.strip().lower()])
    per_lang_lists = _per_lang(lists, "--lang-list")
    per_lang_corpus = _per_lang(corpus, "--lang-corpus")
    if other:
        per_lang_lists.setdefault("other", []).extend(other)
    zipf = dict(min_zipf_per_lang or {})
    result: dict[str, list[str]] = {}
    stats: dict = {"params": {"languages": sorted(langs), "min_zipf": min_zipf, "min_zipf_per_lang": zipf,
                              "wordnet_dir": wordnet_dir, "lists": list(lists), "other": list(other),
                              "corpus": list(corpus), "caption_col": caption_col, "min_count": min_count,
                              "min_pmi": min_pmi, "min_bigram_count": min_bigram_count},
                   "versions": {d: _version(d) for d in ("wordfreq", "pythainlp", "jieba", "janome")},
                   "languages": {}}
    corpus_stats: dict[str, dict] = {}
    available = set(wordfreq_languages()) if langs - {"th"} else set()
    for lang in sorted(langs | set(per_lang_lists) | set(per_lang_corpus)):
        sources: list[tuple[str, Iterable[str]]] = []
        if lang == "en" and wordnet_dir:
            sources.append(("wordnet", wordnet_lemmas(wordnet_dir)))
        if lang in langs:
            if lang == "th":
                sources.append(("pythainlp", thai_words()))
            elif lang in available:
                sources.append(("wordfreq", wordfreq_words(lang, zipf.get(lang, min_zipf))))
            else:
                raise MetadataError(f"no built-in source for language {lang!r}: wordfreq has "
                                    f"{', '.join(sorted(available))}, and th comes from pythainlp; "
                                    f"give it a list with --lang-list {lang}:FILE")
        if lang in per_lang_corpus:
            from clipcurate.balancing.ngrams import corpus_ngrams
            uni, bi, corpus_stats[lang] = corpus_ngrams(
                per_lang_corpus[lang], caption_col, min_count, min_pmi, min_bigram_count,
                work_dir=f"{output}.ngrams-{lang}-tmp", beam_args=beam_args, language=lang)
            sources += [("unigram", uni), ("bigram", bi)]
        for path in per_lang_lists.get(lang, ()):
            sources.append((f"list:{path}", read_list_file(path)))
        entries, source_stats = merge_sources(sources)
        if not entries:
            raise MetadataError(f"language {lang!r}: the sources gave no usable entry ({source_stats})")
        result[lang] = entries
        stats["languages"][lang] = {"entries": len(entries), "sources": source_stats}
        if lang in corpus_stats:
            stats["languages"][lang]["corpus"] = corpus_stats[lang]
    if not result:
        raise MetadataError("build-metadata --worldwide: no language given; use --languages all or en,zh,...")
    stats["entries"] = sum(len(v) for v in result.values())
    stats["num_languages"] = len(result)
    stats["output"] = output
    stats["stats_file"] = _write(result, stats, output)
    return stats


def _write(value: dict, stats: dict, output: str) -> str:
    out = Path(output)
    stats_path = out.with_name(out.stem + ".stats.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, obj, indent in ((out, value, None), (stats_path, stats, 1)):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=indent, sort_keys=True), encoding="utf-8")
        tmp.replace(path)
    return str(stats_path)
