"""Ingest throughput on the real files in ../shared/data, as ratios to a baseline run in
the same process.

* WARC: clipcurate's reader (warcio + selectolax + charset rules + URL resolution) vs a
  bare baseline (warcio + stdlib html.parser collecting <img> attrs, no resolution).
* Parquet: read_file on the LAION 10k file vs pyarrow.parquet.read_table + to_pylist.

Run: python benchmarks/bench_ingest.py [repeats]
"""
from __future__ import annotations

import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
from warcio.archiveiterator import ArchiveIterator

from clipcurate.ingest import IngestConfig, read_file

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


def best(fn, arg, repeats: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeats):
        t = time.perf_counter()
        n = fn(arg)
        times.append(time.perf_counter() - t)
    return min(times), n


def main(repeats: int = 5) -> None:
    for name, base_fn, paths in (("warc", baseline_warc, WARCS), ("parquet", baseline_parquet, [LAION])):
        tb = to = 0.0
        nb = no = 0
        mb = sum(p.stat().st_size for p in paths) / 1e6
        for p in paths:
            t, n = best(base_fn, p, repeats)
            tb, nb = tb + t, nb + n
            t, n = best(ours, p, repeats)
            to, no = to + t, no + n
        print(f"{name}: {mb:.2f} MB, baseline {nb} items {tb * 1e3:.1f} ms, ingest {no} items "
              f"{to * 1e3:.1f} ms ({no / to:,.0f} items/s, {mb / to:.1f} MB/s), ingest/baseline time = {to / tb:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
