"""Caption MinHash throughput: clipcurate's vectorised signatures vs datasketch.

Baselines (same process, same 10,000 real captions of ../shared/data/img2dataset-tests,
same normalisation and shingles, same hash family, so the signatures are identical --
checked below):

* ``datasketch loop``: per caption ``MinHash(num_perm=128)`` and ``m.update(s)`` per
  shingle (the usual idiom; regenerates the permutations per caption);
* ``datasketch loop, shared perms``: the same with ``permutations=`` passed, the fastest
  per-shingle ``update`` loop datasketch offers.

Both baselines include the Python shingling; clipcurate's timing includes normalisation
and shingling too.  Runs are interleaved and the best of ``--repeat`` is kept, to blunt
the noise of a shared 2-core machine.

    python benchmarks/bench_dedupe_minhash.py [--shingle char --ngram 4 --repeat 3]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from datasketch import MinHash

from clipcurate.dedupe import minhash

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def datasketch_loop(captions, kind, n, shared: bool):
    perms = MinHash(num_perm=128).permutations if shared else None
    out = []
    for c in captions:
        m = MinHash(num_perm=128, permutations=perms, scheme="affine32") if shared else MinHash(num_perm=128)
        for s in minhash.shingles(minhash.normalize_caption(c), kind, n):
            m.update(s)
        out.append(m.hashvalues)
    return np.array(out, dtype=np.uint32)


def best(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shingle", default="char", choices=["char", "word"])
    ap.add_argument("--ngram", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    captions = pq.read_table(DATA / "img2dataset-tests" / "test_10000.parquet").column("TEXT").to_pylist()
    minhash.signatures(captions[:10], args.shingle, args.ngram)   # compile / load the kernels
    n_sh = sum(len(minhash.shingles(minhash.normalize_caption(c), args.shingle, args.ngram)) for c in captions)
    t_ours, ours = best(lambda: minhash.signatures(captions, args.shingle, args.ngram), args.repeat)
    t_shared, ref = best(lambda: datasketch_loop(captions, args.shingle, args.ngram, True), args.repeat)
    t_plain, _ = best(lambda: datasketch_loop(captions[:2000], args.shingle, args.ngram, False), 1)
    t_plain *= len(captions) / 2000
    assert np.array_equal(ours, ref), "signatures differ from datasketch"
    print(f"captions={len(captions)} shingles={n_sh} ({args.shingle} {args.ngram}-grams), num_perm=128")
    print(f"clipcurate signatures           {t_ours * 1e3:9.1f} ms  {len(captions) / t_ours:12,.0f} captions/s")
    print(f"datasketch loop, shared perms   {t_shared * 1e3:9.1f} ms  {len(captions) / t_shared:12,.0f} captions/s"
          f"  ratio {t_shared / t_ours:6.1f}x")
    print(f"datasketch loop (MinHash() each) {t_plain * 1e3:8.1f} ms  {len(captions) / t_plain:12,.0f} captions/s"
          f"  ratio {t_plain / t_ours:6.1f}x  (extrapolated from 2,000 captions)")
    print("signatures identical to datasketch: yes")


if __name__ == "__main__":
    main()
