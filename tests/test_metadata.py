"""Metadata builder: WordNet lemmas, corpus n-grams (Beam) against plain Python counts, lists, CLI."""
from __future__ import annotations

import argparse
import collections
import json
import math
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from clipcurate.balancing import cli
from clipcurate.balancing.entries import MetadataError, load_metadata
from clipcurate.balancing.matching import Matcher
from clipcurate.balancing.metadata import (WORDNET_DIR, WORDNET_FILES, clean_entry, merge_sources,
                                           ngram_events, parse_wordnet_line, pmi, read_list_file, tokenize,
                                           wordnet_lemmas)
from clipcurate.balancing.ngrams import CorpusNgrams
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
LAION = DATA / "img2dataset-tests" / "test_10000.parquet"
HAS_WORDNET = all((Path(WORDNET_DIR) / f).is_file() for f in WORDNET_FILES)
needs_wordnet = pytest.mark.skipif(not HAS_WORDNET, reason=f"WordNet 3.0 files absent from {WORDNET_DIR}: "
                                   "apt-get install -y --no-install-recommends wordnet-base")


@pytest.fixture(scope="module")
def laion_captions():
    return pq.read_table(LAION, columns=["TEXT"]).column("TEXT").to_pylist()


# -- WordNet ----------------------------------------------------------------------------------

def test_parse_wordnet_line_markers_and_underscores():
    line = "00203495 00 s 03 guardant(ip) 0 gardant(ip) 0 full-face 0 002 & 00203237 a 0000 | looking forward  \n"
    assert parse_wordnet_line(line) == ["guardant", "gardant", "full-face"]
    line = "02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 023 @ 02083346 n 0000 | a member"
    assert parse_wordnet_line(line) == ["dog", "domestic dog", "Canis familiaris"]
    assert parse_wordnet_line("  1 This software and database is being provided to you\n") == []


@needs_wordnet
def test_wordnet_lemmas_from_debian_files():
    lemmas = wordnet_lemmas()
    assert 140_000 < len(lemmas) < 160_000 and lemmas == sorted(set(lemmas))
    assert {"dog", "domestic dog", "Canis familiaris", "hot dog", "New York", "galore"} <= set(lemmas)
    assert not any("_" in x or x.endswith(("(a)", "(p)", "(ip)")) for x in lemmas)


def test_missing_wordnet_says_how_to_install(tmp_path):
    with pytest.raises(MetadataError, match="apt-get install -y --no-install-recommends wordnet-base"):
        wordnet_lemmas(str(tmp_path))


# -- corpus n-grams ------------------------------------------------------------------------------

def test_tokenize_follows_the_matcher():
    assert tokenize("Red fox, (wild) at 3.5 km; T-shirt don't!") == [
        "Red", "fox", None, None, "at", "3", None, "5", "km", None, "T-shirt", "don't", None]
    events = list(ngram_events("a red fox."))
    assert events == [("u", "a"), ("b", ("a", "red")), ("u", "red"), ("b", ("red", "fox")), ("u", "fox")]
    assert list(ngram_events(None)) == []
    assert pmi(10, 10, 10, 1000) == pytest.approx(math.log2(100))


def plain_ngrams(texts, min_count, min_pmi, min_bigram_count):
    uni, bi = collections.Counter(), collections.Counter()
    for text in texts:
        for kind, value in ngram_events(text):
            (uni if kind == "u" else bi)[value] += 1
    n = sum(uni.values())
    unigrams = {w: c for w, c in uni.items() if c >= min_count}
    bigrams = {f"{a} {b}": pmi(c, uni[a], uni[b], n) for (a, b), c in bi.items() if c >= min_bigram_count}
    return unigrams, {k: v for k, v in bigrams.items() if v >= min_pmi}, n


def test_corpus_ngrams_pipeline_equals_plain_counts(laion_captions, tmp_path):
    out = tmp_path / "rows.json"
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        (p | beam.Create(laion_captions, reshuffle=False).with_output_types(str)
         | CorpusNgrams(min_count=20, min_pmi=10.0, min_bigram_count=3) | beam.combiners.ToList()
         | beam.Map(json.dumps) | beam.io.WriteToText(str(out), shard_name_template=""))
    rows = json.loads(out.read_text())
    unigrams, bigrams, n = plain_ngrams(laion_captions, 20, 10.0, 3)
    assert {r["entry"]: r["value"] for r in rows if r["source"] == "unigram"} == unigrams
    got_bi = {r["entry"]: r["value"] for r in rows if r["source"] == "bigram"}
    assert got_bi.keys() == bigrams.keys() and len(bigrams) > 20
    assert all(got_bi[k] == pytest.approx(v) for k, v in bigrams.items())
    assert {r["entry"]: r["value"] for r in rows if r["source"] == "stat"}["tokens"] == n > 50_000
    assert "the" in unigrams and len(unigrams) > 100


# -- lists, merging, output ----------------------------------------------------------------------------

def test_lists_clean_and_merge_in_fixed_order(tmp_path):
    (tmp_path / "a.txt").write_text("  zebra \n\n   \napple\n!!\nline\twith tab\napple\n", encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps(["apple", "kiwi", " "]), encoding="utf-8")
    (tmp_path / "bad.json").write_text(json.dumps({"x": 1}), encoding="utf-8")
    assert clean_entry("  zebra ") == "zebra" and clean_entry("!!") is None and clean_entry("a\tb") is None
    entries, stats = merge_sources([("a", read_list_file(str(tmp_path / "a.txt"))),
                                    ("b", read_list_file(str(tmp_path / "b.json")))])
    assert entries == ["apple", "zebra", "kiwi"]
    assert stats["a"] == {"candidates": 7, "unique_clean": 2, "added": 2, "dropped_blank_or_punct": 4}
    assert stats["b"]["added"] == 1 and stats["b"]["dropped_blank_or_punct"] == 1
    with pytest.raises(MetadataError, match="bad.json: expected a JSON array"):
        read_list_file(str(tmp_path / "bad.json"))


def _parse(argv):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@needs_wordnet
def test_cli_builds_deterministic_metadata_that_loads_and_matches(laion_captions, tmp_path, capsys):
    corpus = tmp_path / "captions.txt"
    corpus.write_text("\n".join(laion_captions[:3000]), encoding="utf-8")
    labels = json.loads((DATA / "metaclip" / "clipeval_slip_labels.json").read_text())["CIFAR10"]
    (tmp_path / "labels.json").write_text(json.dumps(labels + ["  ", "cat"]), encoding="utf-8")
    outputs = []
    for run in ("1", "2"):
        argv = ["build-metadata", "--wordnet", "--corpus", str(corpus), "--corpus", str(LAION.with_name("test_1000.parquet")),
                "--caption-col", "TEXT", "--min-count", "30", "--min-pmi", "12", "--min-bigram-count", "3",
                "--list", str(tmp_path / "labels.json"), "--output", str(tmp_path / run / "md.json")]
        assert cli.run(_parse(argv)) == 0
        outputs.append((tmp_path / run / "md.json").read_bytes())
    assert outputs[0] == outputs[1] and "wrote" in capsys.readouterr().out
    entries = json.loads(outputs[0])
    stats = json.loads((tmp_path / "1" / "md.stats.json").read_text())
    assert len(entries) == len(set(entries)) == stats["entries"] == sum(s["added"] for s in stats["sources"].values())
    assert list(stats["sources"]) == ["wordnet", "unigram", "bigram", f"list:{tmp_path / 'labels.json'}"]
    assert stats["sources"]["unigram"]["added"] > 0 and stats["sources"]["bigram"]["added"] > 0
    n_wn, n_uni, n_bi = (stats["sources"][k]["added"] for k in ("wordnet", "unigram", "bigram"))
    assert entries[:n_wn] == wordnet_lemmas() and set(entries[n_wn + n_uni + n_bi:]) == set(labels) - set(entries[
        :n_wn + n_uni + n_bi])
    ngram_entries = entries[n_wn:n_wn + n_uni + n_bi]  # each came from a corpus token, so each matches a caption
    m = Matcher(ngram_entries)
    assert set().union(*(m.match(c) for c in laion_captions[:3000])) == set(range(len(ngram_entries)))
    md = load_metadata(str(tmp_path / "1" / "md.json"))
    assert md.num_duplicate == md.num_blank == 0
    assert not Path(str(tmp_path / "1" / "md.json") + ".ngrams-tmp").exists()


def test_cli_reports_bad_input(tmp_path, capsys):
    assert cli.run(_parse(["build-metadata", "--output", str(tmp_path / "m.json")])) == 2
    assert "nothing to build" in capsys.readouterr().err
    argv = ["build-metadata", "--wordnet", "--wordnet-dir", str(tmp_path), "--output", str(tmp_path / "m.json")]
    assert cli.run(_parse(argv)) == 2
    assert "wordnet-base" in capsys.readouterr().err
    (tmp_path / "blank.txt").write_text(" \n\t\n", encoding="utf-8")
    assert cli.run(_parse(["build-metadata", "--list", str(tmp_path / "blank.txt"), "--output",
                           str(tmp_path / "m.json")])) == 2
    assert "no usable entry" in capsys.readouterr().err and not (tmp_path / "m.json").exists()
