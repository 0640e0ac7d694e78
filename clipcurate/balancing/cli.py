"""``build-metadata`` subcommand: build a MetaCLIP metadata JSON from WordNet, a corpus and lists.

    python beam_runner.py build-metadata --wordnet --corpus 'text/*.txt' --list titles.txt \\
        --output metadata.json [Beam options for the n-gram pipeline]

Wire it with ``add_parser(subparsers)`` and call ``run(args)``; unknown arguments
(``args.beam_args``, if the caller collects them) go to the n-gram Beam pipeline.
"""
from __future__ import annotations

import argparse
import sys

from clipcurate.balancing.entries import MetadataError
from clipcurate.balancing.metadata import WORDNET_DIR, build_metadata

DESCRIPTION = """Build a MetaCLIP metadata list (JSON array of unique strings) from WordNet 3.0 lemmas,
corpus unigrams (count >= --min-count) and bigrams (PMI >= --min-pmi), and entry lists.
Sources are merged in that order, each sorted, first occurrence wins; per-source numbers go
to <output stem>.stats.json.  WordNet: apt-get install -y --no-install-recommends wordnet-base

    build-metadata --wordnet --corpus 'text/*.txt' --corpus 'pool/*.parquet' --caption-col TEXT \\
        --list titles.txt --output metadata.json

Worldwide (MetaCLIP 2) metadata: a JSON object language -> entries, from wordfreq word lists
(Zipf frequency >= --min-zipf, per language with LANG:Z), PyThaiNLP's Thai words, WordNet for en,
and per-language lists (pip install 'clipcurate[worldwide]'):

    build-metadata --worldwide --languages all --wordnet --lang-list ja:titles_ja.txt \\
        --lang-corpus 'ja:alt_ja/*.txt' --other-list names.txt --output worldwide.json

--lang-corpus LANG:GLOB adds that language's corpus unigrams and PMI bigrams (--min-count,
--min-pmi, --min-bigram-count); zh, ja and th are cut by word segmenters (jieba, Janome, PyThaiNLP)."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``build-metadata`` subcommand to an ``argparse`` subparsers object; return its parser."""
    p = subparsers.add_parser("build-metadata", help="build a MetaCLIP metadata list (JSON array of strings)",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wordnet", action="store_true", help="add all WordNet 3.0 synset lemma names")
    p.add_argument("--wordnet-dir", default=WORDNET_DIR,
                   help=f"folder with data.noun/verb/adj/adv (default {WORDNET_DIR}, Debian package wordnet-base)")
    p.add_argument("--corpus", action="append", default=[], metavar="GLOB",
                   help="text files (one text per line) or *.parquet files; repeatable")
    p.add_argument("--caption-col", default="caption", help="text column of Parquet corpus files (default caption)")
    p.add_argument("--min-count", type=int, default=100, help="keep unigrams with count >= this (default 100)")
    p.add_argument("--min-pmi", type=float, default=30.0, help="keep bigrams with PMI (log2) >= this (default 30)")
    p.add_argument("--min-bigram-count", type=int, default=1, help="ignore bigrams seen fewer times (default 1)")
    p.add_argument("--list", action="append", default=[], metavar="FILE", dest="lists",
                   help="plain text (one per line) or JSON array of entries to merge in; repeatable")
    p.add_argument("--worldwide", action="store_true",
                   help="build a per-language JSON object (MetaCLIP 2) instead of one list")
    p.add_argument("--languages", default="all",
                   help="worldwide: comma-separated codes, or 'all' (every wordfreq language + th; default)")
    p.add_argument("--min-zipf", action="append", default=[], metavar="[LANG:]Z",
                   help="worldwide: keep wordfreq words with Zipf frequency >= Z (default 3.0); repeatable")
    p.add_argument("--lang-list", action="append", default=[], metavar="LANG:FILE",
                   help="worldwide: entries of one language (text or JSON array); repeatable")
    p.add_argument("--lang-corpus", action="append", default=[], metavar="LANG:GLOB",
                   help="worldwide: corpus of one language for n-grams (text or Parquet, --caption-col); repeatable")
    p.add_argument("--other-list", action="append", default=[], metavar="FILE",
                   help="worldwide: entries of the 'other' list (captions in languages without a list)")
    p.add_argument("--output", required=True, help="metadata JSON to write (stats go to <stem>.stats.json)")
    return p


def run(args: argparse.Namespace) -> int:
    """Build the metadata file; print a one-line summary; return 0, or 2 with a message on bad input."""
    if getattr(args, "worldwide", False):
        return _run_worldwide(args)
    try:
        stats = build_metadata(args.output, wordnet_dir=args.wordnet_dir if args.wordnet else None,
                               corpus=args.corpus, caption_col=args.caption_col, min_count=args.min_count,
                               min_pmi=args.min_pmi, min_bigram_count=args.min_bigram_count, lists=args.lists,
                               beam_args=getattr(args, "beam_args", None))
    except (MetadataError, ValueError, OSError) as e:
        print(f"build-metadata: {e}", file=sys.stderr)
        return 2
    added = ", ".join(f"{name}: {s['added']}" for name, s in stats["sources"].items())
    print(f"wrote {stats['entries']} entries to {args.output} ({added}); stats in {stats['stats_file']}")
    return 0


def _run_worldwide(args: argparse.Namespace) -> int:
    from clipcurate.balancing.worldwide_metadata import DEFAULT_MIN_ZIPF, build_worldwide_metadata, parse_zipf
    try:
        if args.corpus or args.lists:
            raise MetadataError("--worldwide takes --lang-corpus LANG:GLOB, --lang-list LANG:FILE and "
                                "--other-list FILE (one language each) instead of --corpus / --list")
        default, per_lang = parse_zipf(args.min_zipf, DEFAULT_MIN_ZIPF)
        stats = build_worldwide_metadata(args.output, [c for c in args.languages.split(",") if c.strip()],
                                         min_zipf=default, min_zipf_per_lang=per_lang,
                                         wordnet_dir=args.wordnet_dir if args.wordnet else None,
                                         lists=args.lang_list, other=args.other_list, corpus=args.lang_corpus,
                                         caption_col=args.caption_col, min_count=args.min_count,
                                         min_pmi=args.min_pmi, min_bigram_count=args.min_bigram_count,
                                         beam_args=getattr(args, "beam_args", None))
    except (MetadataError, ValueError, OSError) as e:
        print(f"build-metadata: {e}", file=sys.stderr)
        return 2
    print(f"wrote {stats['entries']} entries in {stats['num_languages']} languages to {args.output}; "
          f"stats in {stats['stats_file']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m clipcurate.balancing.cli build-metadata ...``."""
    parser = argparse.ArgumentParser(prog="clipcurate")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args, beam_args = parser.parse_known_args(argv)
    args.beam_args = beam_args or None
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
