"""Caption near-dedupe at scale on the local runner: N synthetic captions (default
1,000,000) built from the 10,000 real captions of ../shared/data/img2dataset-tests with
~10% injected near-duplicates (edit chains), through ``CaptionNearDedupe`` with the
default config on ``--workers`` processes.  Prints wall time, throughput, CPU and peak
RSS/PSS of the whole process tree (``_measure``: a cgroup where available, else /proc
sampling; Beam's worker processes included), the load average before and after, counts,
the largest component and, for the injected duplicates, how many were found.  Records are
generated inside the pipeline, by shard.  One run per invocation (it is long); run it
several times for a spread.

    python benchmarks/bench_dedupe_scale.py [--n 1000000 --workers 2 --out /tmp/dedupe_scale]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, measure  # noqa: E402

from clipcurate.dedupe.config import DedupeConfig  # noqa: E402
from clipcurate.dedupe.lsh import lsh_params
from clipcurate.dedupe.near import CaptionNearDedupe
from clipcurate.dedupe.synth import synthetic_caption, vocabulary
from clipcurate.schemas.uid import make_uid

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SEED = 11


class _Shard(beam.DoFn):
    def __init__(self, per_shard: int, n: int):
        self.per_shard, self.n = per_shard, n

    def setup(self):
        self.real = pq.read_table(DATA / "img2dataset-tests" / "test_10000.parquet").column("TEXT").to_pylist()
        self.vocab = vocabulary(self.real[:2000])

    def process(self, shard: int):
        for i in range(shard * self.per_shard, min(self.n, (shard + 1) * self.per_shard)):
            cap, root = synthetic_caption(i, self.real, self.vocab, SEED)
            url = f"https://img.example/{i}.jpg"
            yield {"uid": make_uid(url, cap), "url": url, "caption": cap, "extra": str(root)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shards", type=int, default=200)
    ap.add_argument("--out", default="/tmp/dedupe_scale")
    ap.add_argument("--threshold", type=float, default=DedupeConfig().jaccard_threshold)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = DedupeConfig(jaccard_threshold=args.threshold)
    opts = ["--runner=FnApiRunner", f"--direct_num_workers={args.workers}",
            "--direct_running_mode=multi_processing"] if args.workers > 1 else ["--runner=FnApiRunner"]
    print(machine())
    per = -(-args.n // args.shards)
    with measure("dedupe", interval=0.5, pss_interval=5.0) as tree, beam.Pipeline(options=PipelineOptions(opts)) as p:
        recs = (p | beam.Create(list(range(args.shards))) | beam.Reshuffle()
                | beam.ParDo(_Shard(per, args.n)))
        res = recs | CaptionNearDedupe(cfg, SEED, keep_rejects=True)
        res["counts"] | "CountsJson" >> beam.Map(json.dumps) | "WC" >> beam.io.WriteToText(str(out / "counts"))
        res["stats"] | "StatsJson" >> beam.Map(json.dumps) | "WS" >> beam.io.WriteToText(str(out / "stats"))
        (res["rejects"] | "Rej" >> beam.Map(lambda r: json.dumps([r["uid"], r["extra"], r["duplicate_of"]]))
         | "WR" >> beam.io.WriteToText(str(out / "rejects")))
        (res["kept"] | "Kept" >> beam.Map(lambda r: json.dumps([r["uid"], r["extra"]]))
         | "WK" >> beam.io.WriteToText(str(out / "kept")))
    m = tree.result
    wall = m.wall_s
    read = lambda name: [json.loads(line) for f in sorted(out.glob(f"{name}-*")) for line in f.read_text().splitlines()]  # noqa: E731
    counts: dict[str, int] = {}
    for (_, key), v in read("counts"):
        counts[key] = counts.get(key, 0) + v
    stats = dict(read("stats"))
    hist = stats["near_dup_caption_clusters"]
    kept, rejects = read("kept"), read("rejects")
    root_of = {u: r for u, r in kept} | {u: r for u, r, _ in rejects}
    roots = {}
    for u, r in root_of.items():
        roots.setdefault(r, []).append(u)
    true_dups = sum(len(v) - 1 for v in roots.values())
    same_root = sum(1 for u, r, k in rejects if root_of.get(k) == r)
    cpu = m.cpu_s
    print(f"jaccard_threshold={cfg.jaccard_threshold} bands x rows={lsh_params(cfg.jaccard_threshold, cfg.num_perm)}")
    print(f"cpu={cpu:.0f}s (user+sys, whole process tree by {m.method}) -> {args.n / cpu:,.0f} captions per CPU-second")
    print(f"n={args.n} workers={args.workers} wall={wall:.0f}s rate={args.n / wall:,.0f} captions/s "
          f"({args.n / wall / args.workers:,.0f} per core) peak_rss={m.peak_rss / 2**30:.2f} GiB "
          f"peak_pss={(m.peak_pss or 0) / 2**30:.2f} GiB load {m.load_before:.2f} -> {m.load_after:.2f}")
    print(f"counts={counts}")
    print(f"components>=2: {sum(hist.values())}, largest={max(map(int, hist), default=1)}, "
          f"unconverged={stats['near_dup_caption_clusters_unconverged']}")
    print(f"injected near-dups={true_dups}, dropped={len(rejects)}, of which same origin as their keeper: "
          f"{same_root} (keeper of same origin among injected {same_root / max(1, true_dups):.3f})")


if __name__ == "__main__":
    main()
