"""Caption MinHash throughput: clipcurate's vectorised signatures vs datasketch and rensa.

Same process, same 10,000 real captions of ../shared/data/img2dataset-tests, 128
permutations, same normalisation and shingles (``minhash.normalize_caption`` +
``minhash.shingles``, the UTF-8 bytes of each shingle) for every tool.  Baselines, named
as a user would call them:

* ``datasketch update loop, MinHash() per caption``: ``MinHash(num_perm=128)`` and
  ``m.update(s)`` per shingle, the README idiom (permutations regenerated per caption);
* ``datasketch update loop, shared permutations``: the same with ``permutations=`` passed;
* ``datasketch MinHash.bulk``: ``MinHash.bulk(shingle_lists, num_perm=128)`` (one
  ``update_batch`` per caption, numpy over the shingles; the fastest datasketch API);
* ``datasketch MinHash.bulk + LeanMinHash``: the same, each kept as a ``LeanMinHash``
  (what a user stores or puts in an LSH index);
* ``rensa RMinHash.digest_matrix_from_token_byte_sets``, shingling in Python included
  (normalise + shingle every caption, then one batch call);
* the same rensa call on pre-shingled input (shingling done once, outside the timing):
  the hashing alone, which our kernel does not offer as a separate step.

The datasketch baselines produce the same signatures as ours (checked); rensa uses its
own hash family (not comparable bit for bit; its Jaccard estimates are of the same
quality).  Both update loops are slow, so they run on the first ``--slow-n`` captions and
are compared per caption.  Everything is timed as CPU of the whole process tree (rensa may
use threads) with ``_measure``; the runs are interleaved, ``--repeat`` rounds, and the
table gives median (min-max).  rensa is optional: ``pip install rensa`` (tested with 0.5.0).

    python benchmarks/bench_dedupe_minhash.py [--shingle char --ngram 4 --repeat 5 --slow-n 2000]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from datasketch import LeanMinHash, MinHash

from _measure import interleave, machine, ratio, table
from clipcurate.dedupe import minhash

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NUM_PERM = 128


def shingle_lists(captions, kind, n):
    return [minhash.shingles(minhash.normalize_caption(c), kind, n) for c in captions]


def datasketch_loop(captions, kind, n, shared: bool):
    perms = MinHash(num_perm=NUM_PERM).permutations if shared else None
    out = []
    for c in captions:
        m = MinHash(num_perm=NUM_PERM, permutations=perms, scheme="affine32") if shared else MinHash(num_perm=NUM_PERM)
        for s in minhash.shingles(minhash.normalize_caption(c), kind, n):
            m.update(s)
        out.append(m.hashvalues)
    return np.array(out, dtype=np.uint32)


def datasketch_bulk(captions, kind, n, lean: bool):
    ms = MinHash.bulk(shingle_lists(captions, kind, n), num_perm=NUM_PERM)
    if lean:
        ms = [LeanMinHash(m) for m in ms]
    return np.array([m.hashvalues for m in ms], dtype=np.uint32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shingle", default="char", choices=["char", "word"])
    ap.add_argument("--ngram", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--slow-n", type=int, default=2000, help="captions for the two update loops")
    args = ap.parse_args()
    captions = pq.read_table(DATA / "img2dataset-tests" / "test_10000.parquet").column("TEXT").to_pylist()
    kind, n, slow = args.shingle, args.ngram, captions[:args.slow_n]
    minhash.signatures(captions[:10], kind, n)   # compile / load the kernels
    sets = shingle_lists(captions, kind, n)
    print(f"captions={len(captions)} shingles={sum(map(len, sets)):,} ({kind} {n}-grams), num_perm={NUM_PERM}")
    print(machine())

    ours = "clipcurate minhash.signatures"
    runs = {
        ours: lambda: minhash.signatures(captions, kind, n),
        "datasketch MinHash.bulk": lambda: datasketch_bulk(captions, kind, n, False),
        "datasketch MinHash.bulk + LeanMinHash": lambda: datasketch_bulk(captions, kind, n, True),
        "datasketch update loop, shared perms": lambda: datasketch_loop(slow, kind, n, True),
        "datasketch update loop, MinHash() each": lambda: datasketch_loop(slow, kind, n, False),
    }
    items = {k: len(slow) if "loop" in k else len(captions) for k in runs}
    try:
        import rensa
        R = rensa.RMinHash
        runs["rensa batch, Python shingling included"] = lambda: R.digest_matrix_from_token_byte_sets(
            shingle_lists(captions, kind, n), NUM_PERM, 42)
        runs["rensa batch, pre-shingled (hashing only)"] = lambda: R.digest_matrix_from_token_byte_sets(
            sets, NUM_PERM, 42)
        items.update({k: len(captions) for k in runs if k.startswith("rensa")})
    except ImportError:
        print("rensa baselines skipped: rensa is not installed (pip install rensa)")

    res = interleave(runs, args.repeat, verbose=False)
    sig = res[ours][0].value
    assert np.array_equal(res["datasketch MinHash.bulk"][0].value, sig), "signatures differ from datasketch bulk"
    assert np.array_equal(res["datasketch update loop, shared perms"][0].value, sig[:len(slow)]), \
        "signatures differ from the datasketch loop"
    print("signatures identical to datasketch (bulk and update loop): yes")
    table(res, items, unit="caption")
    for base in runs:
        if base != ours:
            ratio(res, ours, base, items=items)
    print(machine())


if __name__ == "__main__":
    main()
