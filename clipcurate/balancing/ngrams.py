"""Beam pipeline for the corpus n-gram sources of the metadata builder (MetaCLIP recipe).

In: text files (one text per line; gzip/bz2 by extension) and/or Parquet files (one
caption column).  Out: unigrams with count >= ``min_count`` and bigrams with
PMI >= ``min_pmi`` (see :mod:`clipcurate.balancing.metadata` for tokens and PMI).
Counting is ``Count.PerElement`` (combiner-lifted), the PMI join is two
``CoGroupByKey`` on the bigram's words, and N (all tokens) is a singleton side input,
so memory per worker does not grow with the corpus.

``language`` (zh, ja, th): words come from that language's word segmenter
(:mod:`clipcurate.balancing.segmenters`, built once per DoFn instance in ``setup``) instead of
whitespace, and a bigram entry joins its words without a space unless the text had one
(``東京タワー``, ``New York``), as MetaCLIP 2 builds bigrams for unspaced scripts.
"""
from __future__ import annotations

import json
from typing import Iterable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from clipcurate.balancing.metadata import ngram_events, pmi
from clipcurate.balancing.segmenters import make_segmenter


class _NgramEvents(beam.DoFn):
    """text -> word tokens on the main output, (w1, w2, sep) triples on the ``bigram`` output."""

    def __init__(self, language: str | None = None):
        self._language, self._segment = language, None

    def setup(self):
        self._segment = make_segmenter(self._language)

    def process(self, text):
        for kind, value in ngram_events(text, self._segment):
            if kind == "u":
                yield value
            else:
                yield beam.pvalue.TaggedOutput("bigram", value if len(value) == 3 else (*value, " "))


def _join_first(kv):
    """(w1, {bi: [(w2, sep, c)], uni: [c1]}) -> (w2, (w1, sep, c, c1)) for each bigram."""
    _, groups = kv
    for c1 in groups["uni"]:
        for w2, sep, c in groups["bi"]:
            yield w2, (kv[0], sep, c, c1)


def _join_second(kv):
    """(w2, {bi: [(w1, sep, c, c1)], uni: [c2]}) -> (w1, w2, sep, c, c1, c2) for each bigram."""
    w2, groups = kv
    for c2 in groups["uni"]:
        for w1, sep, c, c1 in groups["bi"]:
            yield w1, w2, sep, c, c1, c2


class CorpusNgrams(beam.PTransform):
    """PCollection of texts -> rows ``{"source": "unigram"|"bigram"|"stat", "entry", "value"}``.

    ``stat`` rows carry corpus totals (tokens, distinct unigrams, distinct bigrams).  ``language``:
    segment the texts with that language's word segmenter (zh, ja, th; others: whitespace).
    """

    def __init__(self, min_count: int = 100, min_pmi: float = 30.0, min_bigram_count: int = 1,
                 language: str | None = None):
        super().__init__()
        if min_count < 1 or min_bigram_count < 1:
            raise ValueError(f"min_count and min_bigram_count must be >= 1, got {min_count}, {min_bigram_count}")
        self.min_count, self.min_pmi, self.min_bigram_count = min_count, float(min_pmi), min_bigram_count
        self.language = language
        make_segmenter(language)  # a missing segmenter fails here, with the install hint

    def expand(self, texts):
        ev = texts | "Events" >> beam.ParDo(_NgramEvents(self.language)).with_outputs("bigram", main="unigram")
        uni = ev.unigram | "CountUni" >> beam.combiners.Count.PerElement()
        bi = ev.bigram | "CountBi" >> beam.combiners.Count.PerElement()
        n_tokens = uni | "N/Values" >> beam.Values() | "N/Sum" >> beam.CombineGlobally(sum)
        min_bc, min_c, min_pmi = self.min_bigram_count, self.min_count, self.min_pmi
        by_w1 = (bi | "MinBigramCount" >> beam.Filter(lambda kv: kv[1] >= min_bc)
                 | "KeyW1" >> beam.Map(lambda kv: (kv[0][0], (kv[0][1], kv[0][2], kv[1]))))
        by_w2 = {"bi": by_w1, "uni": uni} | "JoinW1" >> beam.CoGroupByKey() | "EmitW2" >> beam.FlatMap(_join_first)
        scored = ({"bi": by_w2, "uni": uni} | "JoinW2" >> beam.CoGroupByKey() | "EmitBi" >> beam.FlatMap(_join_second)
                  | "Pmi" >> beam.Map(lambda r, n: (f"{r[0]}{r[2]}{r[1]}", pmi(r[3], r[4], r[5], n)),
                                      n=beam.pvalue.AsSingleton(n_tokens)))
        bigrams = (scored | "MinPmi" >> beam.Filter(lambda kv: kv[1] >= min_pmi)
                   | "BiRows" >> beam.Map(lambda kv: {"source": "bigram", "entry": kv[0], "value": kv[1]}))
        unigrams = (uni | "MinCount" >> beam.Filter(lambda kv: kv[1] >= min_c)
                    | "UniRows" >> beam.Map(lambda kv: {"source": "unigram", "entry": kv[0], "value": kv[1]}))
        stats = [n_tokens | "StatN" >> beam.Map(lambda n: {"source": "stat", "entry": "tokens", "value": n}),
                 uni | "StatUni" >> beam.combiners.Count.Globally()
                 | "StatUniRow" >> beam.Map(lambda n: {"source": "stat", "entry": "distinct_unigrams", "value": n}),
                 bi | "StatBi" >> beam.combiners.Count.Globally()
                 | "StatBiRow" >> beam.Map(lambda n: {"source": "stat", "entry": "distinct_bigrams", "value": n})]
        return [unigrams, bigrams, *stats] | "Rows" >> beam.Flatten()


def read_corpus(pipeline: beam.Pipeline, globs: Iterable[str], caption_col: str) -> beam.PCollection:
    """Texts from text files (one per line) and the ``caption_col`` of Parquet files."""
    parts = []
    for i, pattern in enumerate(globs):
        if pattern.endswith(".parquet"):
            parts.append(pipeline | f"Parquet{i}" >> beam.io.ReadFromParquet(pattern, columns=[caption_col])
                         | f"Col{i}" >> beam.Map(lambda r: r.get(caption_col)))
        else:
            parts.append(pipeline | f"Text{i}" >> beam.io.ReadFromText(pattern))
    if not parts:
        raise ValueError("read_corpus: no corpus files given")
    return parts | "Texts" >> beam.Flatten()


def corpus_ngrams(globs: list[str], caption_col: str, min_count: int, min_pmi: float, min_bigram_count: int,
                  work_dir: str, beam_args: list[str] | None = None, language: str | None = None
                  ) -> tuple[list[str], list[str], dict]:
    """Run the n-gram pipeline; return (unigram entries, bigram entries, corpus stats).

    Rows go through JSON-lines files under ``work_dir`` (deleted afterwards), so any
    runner whose workers can write there works.
    """
    prefix = FileSystems.join(work_dir, "ngrams")
    opts = PipelineOptions(list(beam_args or ["--runner=FnApiRunner"]))
    with beam.Pipeline(options=opts) as p:
        (read_corpus(p, globs, caption_col)
         | "Ngrams" >> CorpusNgrams(min_count, min_pmi, min_bigram_count, language)
         | "Json" >> beam.Map(lambda r: json.dumps(r, ensure_ascii=False))
         | "Write" >> beam.io.WriteToText(prefix, file_name_suffix=".jsonl"))
    rows = []
    files = [m.path for m in FileSystems.match([prefix + "*.jsonl"])[0].metadata_list]
    for path in sorted(files):
        with FileSystems.open(path) as f:
            rows.extend(json.loads(line) for line in f.read().decode("utf-8").splitlines() if line)
    FileSystems.delete([work_dir])
    unigrams = [r["entry"] for r in rows if r["source"] == "unigram"]
    bigrams = [r["entry"] for r in rows if r["source"] == "bigram"]
    stats = {r["entry"]: r["value"] for r in rows if r["source"] == "stat"}
    return unigrams, bigrams, stats
