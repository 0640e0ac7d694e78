"""Ingest throughput on the real files in ../shared/data, as ratios to a baseline run in
the same process.

* WARC: clipcurate's reader (warcio + selectolax + charset rules + URL resolution) vs a
  bare baseline (warcio + stdlib html.parser collecting <img> attrs, no resolution).
* Parquet: read_file on the LAION 10k file vs pyarrow.parquet.read_table + to_pylist.

Both are measured with ``_measure`` (CPU of the whole process tree, wall, peak RSS), A/B
interleaved over ``repeats`` rounds; tables give median (min-max).

Run: python benchmarks/bench_ingest.py [repeats]
"""
from __future__ import annotations

import statistics
import sys
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
from warcio.archiveiterator import ArchiveIterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import interleave, machine, ratio, table  # noqa: E402

from clipcurate.ingest import IngestConfig, read_file  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WARCS = [DATA / "resiliparse-warc" / "warcfile.warc.gz", DATA / "resiliparse-warc" / "clueweb-quirk.warc.gz",
         DATA / "eugeneware-warc-wat" / "CC-MAIN-20140820021334-00006-ip-10-180-136-8.ec2.internal.warc"]
LAION = DATA / "img2dataset-tests" / "test_10000.parquet"


class _Imgs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.n = 0

    def handle_starttag(self, tag, attrs):
        self.n += tag == "img"


def baseline_warc(path: Path) -> int:
    n = 0
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type == "response" and rec.http_headers is not None:
                p = _Imgs()
                p.feed(rec.content_stream().read().decode("utf-8", "replace"))
                n += p.n
    return n


def baseline_parquet(path: Path) -> int:
    t = pq.read_table(path, columns=["URL", "TEXT"])
    return len(list(zip(t.column("URL").to_pylist(), t.column("TEXT").to_pylist())))


def ours(path: Path) -> int:
    return sum(1 for _ in read_file(str(path), IngestConfig()))


def main(repeats: int = 5) -> None:
    print(machine())
    for name, base_fn, paths in (("warc", baseline_warc, WARCS), ("parquet", baseline_parquet, [LAION])):
        mb = sum(p.stat().st_size for p in paths) / 1e6
        base_name = ("warcio + html.parser <img> count" if name == "warc" else "pq.read_table + to_pylist")
        ours_name = f"clipcurate read_file ({name})"
        res = interleave({base_name: lambda: sum(base_fn(p) for p in paths),
                          ours_name: lambda: sum(ours(p) for p in paths)}, repeats, verbose=False)
        nb, no = res[base_name][0].value, res[ours_name][0].value
        tb, to = (statistics.median(m.wall_s for m in res[k]) for k in (base_name, ours_name))
        cb, co = (statistics.median(m.cpu_s for m in res[k]) for k in (base_name, ours_name))
        print(f"{name}: {mb:.2f} MB, baseline {nb} items {tb * 1e3:.1f} ms wall / {cb * 1e3:.1f} ms CPU, ingest {no} items "
              f"{to * 1e3:.1f} ms wall / {co * 1e3:.1f} ms CPU ({no / co:,.0f} items per CPU-s, {mb / co:.1f} MB per CPU-s), "
              f"ingest/baseline CPU = {co / cb:.2f} (medians of {repeats})")
        table(res, items={base_name: nb, ours_name: no}, unit="item")
        ratio(res, base_name, ours_name)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
