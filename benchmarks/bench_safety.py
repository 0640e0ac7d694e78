"""Throughput of each safety check, one core, and PDQ matching against 10^6 list entries.

Prints, all measured in this process (CPU seconds of this process, ``time.process_time``;
every model is pinned to one thread: onnxruntime intra/inter-op 1, ``cv2.setNumThreads(1)``):

* images per CPU-second of each image check on real photos (the 18 Open Images photos and
  60 ImageNet samples in ../shared/data, each ``--repeat`` times), with its ratio to the
  baseline of decoding the same image to RGB (PIL) -- how many decodes one check costs:
  MD5+SHA-1+SHA-256 digests with a lookup in 10^6-entry lists, PDQ hash, NudeNet (NSFW and
  faces in one pass), the Haar face cascade, blur + re-encode of the found faces;
* PDQ matching against ``--entries`` (default 10^6) random list entries plus the photos'
  own hashes: index build time and size, queries per CPU-second of the multi-index vs a
  naive numpy linear scan (XOR + popcount over all entries), and a check that both find the
  same matches for re-encoded and resized copies and for unrelated photos;
* captions per CPU-second of the toxicity model and URLs per CPU-second of the URL rules
  (10^5 domain rules + 10^4 exact URLs + 10^3 prefixes) vs a naive scan of the domain rules,
  on the 10,000 real LAION rows.

Usage: nice -n 10 python benchmarks/bench_safety.py [--entries 1000000] [--repeat 3] [--queries 300]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import statistics
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from clipcurate.safety import faces as fc
from clipcurate.safety.hashes import DigestLists, PdqIndex, linear_scan, pdq_hash
from clipcurate.safety.nudenet_model import NudeNet, face_boxes
from clipcurate.safety.text import ToxicScorer
from clipcurate.safety.urls import build_rules

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def cpu_rate(fn, items, repeat: int) -> tuple[float, float]:
    """(median items per CPU-second, median items per wall-second) of ``fn(item)`` over ``items``."""
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        for x in items:
            fn(x)
        cpu.append(len(items) / max(time.process_time() - c0, 1e-9))
        wall.append(len(items) / max(time.perf_counter() - w0, 1e-9))
    return statistics.median(cpu), statistics.median(wall)


def photos() -> list[bytes]:
    paths = sorted((DATA / "open-images-cc-test-images").glob("*.jpg"))
    paths += sorted((DATA / "imagenet-sample-images-subset").rglob("*.JPEG"))[:60]
    return [p.read_bytes() for p in paths]


def image_checks(images: list[bytes], repeat: int, rng) -> None:
    def decode(b):
        with Image.open(io.BytesIO(b)) as im:
            return np.asarray(im.convert("RGB"))

    digests = DigestLists([("md5", [rng.bytes(16).hex() for _ in range(10**6 // 3)]),
                           ("sha1", ["sha1:" + rng.bytes(20).hex() for _ in range(10**6 // 3)]),
                           ("sha256", [rng.bytes(32).hex() for _ in range(10**6 // 3)])])
    nn = NudeNet()
    haar = fc.HaarFaces()
    rgbs = [decode(b) for b in images]
    found = [fc.merge_boxes(face_boxes(nn.detect(r), 0.3)) for r in rgbs]

    def blur(i):
        img = Image.fromarray(rgbs[i])
        return fc.encode(fc.blur_boxes(img, found[i], 0.5), "jpg") if found[i] else None

    idx = list(range(len(images)))
    runs = {
        "decode to RGB (baseline)": (decode, images),
        "MD5+SHA-1+SHA-256 + lookup (1M entries)": (digests.match, images),
        "PDQ hash (decode at <= 512 px + pdqhash)": (pdq_hash, images),
        "NudeNet 320n (NSFW + faces), decoded": (lambda i: nn.detect(rgbs[i]), idx),
        "Haar frontal faces, decoded": (lambda i: haar.boxes(rgbs[i]), idx),
        "blur faces + re-encode JPEG (with faces)": (blur, [i for i in idx if found[i]]),
    }
    print(f"\nimage checks: {len(images)} real photos x {repeat} rounds, one core")
    print(f"{'check':<44}{'img/CPU-s':>11}{'img/wall-s':>12}{'x decode':>10}")
    base = None
    for name, (fn, items) in runs.items():
        c, w = cpu_rate(fn, items, repeat)
        base = base or c
        print(f"{name:<44}{c:>11.1f}{w:>12.1f}{base / c:>10.2f}")
    print(f"  (images with NudeNet faces: {sum(bool(f) for f in found)} of {len(images)})")


def pdq_bench(images: list[bytes], entries: int, queries: int, repeat: int, rng) -> None:
    real = [pdq_hash(b)[0] for b in images[:18]]
    listed = real[:9]
    noise = rng.integers(0, 256, (entries - len(listed), 32), dtype=np.uint8)
    table = np.vstack([noise, np.frombuffer(b"".join(listed), np.uint8).reshape(-1, 32)])
    c0, w0 = time.process_time(), time.perf_counter()
    index = PdqIndex(table, np.zeros(len(table), np.int32), ["list"], 31, 16)
    build_cpu, build_wall = time.process_time() - c0, time.perf_counter() - w0
    size = sum(a.nbytes for a in (index.rows, index.starts, index.hashes, index.words, index.list_ids))
    # queries: every real photo's hash and its JPEG-q70 / half-size copies, then random hashes
    qs = []
    for b in images[:18]:
        img = Image.open(io.BytesIO(b)).convert("RGB")
        for v in (img, img.resize((img.width // 2, img.height // 2))):
            buf = io.BytesIO()
            v.save(buf, "JPEG", quality=70)
            qs.append(pdq_hash(buf.getvalue())[0])
    qs = real + qs + [rng.bytes(32) for _ in range(max(0, queries - len(real) - len(qs)))]
    agree = all((index.match(q) is not None) == bool(len(linear_scan(index.words, q, 31))) for q in qs)
    hits = sum(index.match(q) is not None for q in qs)
    cand = statistics.mean(len(index.candidates(q)) for q in qs)
    ci, wi = cpu_rate(index.match, qs, repeat)
    lin_qs = qs[:max(30, len(qs) // 10)]
    cl, wl = cpu_rate(lambda q: linear_scan(index.words, q, 31), lin_qs, repeat)
    print(f"\nPDQ matching: {len(table):,} list entries (distance <= 31, 16 bands x 16 bits, radius 1)")
    print(f"  index build: {build_cpu:.2f} CPU-s ({build_wall:.2f} s wall), {size / 2**20:.0f} MiB")
    print(f"  queries: {len(qs)} ({len(real)} listed/unlisted photos, {2 * len(real)} re-encoded/resized copies, "
          f"the rest random); matches {hits}, index == linear scan: {agree}; candidates/query {cand:.0f}")
    print(f"  {'method':<28}{'q/CPU-s':>10}{'q/wall-s':>10}{'x linear':>10}")
    print(f"  {'linear scan (numpy)':<28}{cl:>10.1f}{wl:>10.1f}{1.0:>10.2f}")
    print(f"  {'multi-index':<28}{ci:>10.1f}{wi:>10.1f}{ci / cl:>10.1f}")


def text_bench(repeat: int, rng) -> None:
    rows = pq.read_table(DATA / "img2dataset-tests" / "test_10000.parquet", columns=["URL", "TEXT"]).to_pylist()
    urls = [r["URL"] for r in rows]
    caps = [r["TEXT"] for r in rows]
    tox = ToxicScorer()
    batches = [caps[i:i + 256] for i in range(0, len(caps), 256)]
    c0 = time.process_time()
    for _ in range(repeat):
        for b in batches:
            tox.scores(b)
    tox_rate = repeat * len(caps) / (time.process_time() - c0)
    real_hosts = sorted({urlsplit(u).hostname for u in urls} - {None, ""})
    domains = [f"d{i}-{rng.integers(1 << 30)}.example.com" for i in range(10**5 - 500)] + real_hosts[:500]
    lines = domains + [f"https://x{i}.example.org/p/{i}.jpg" for i in range(10**4)] + \
        [f"https://y{i}.example.net/dir/*" for i in range(10**3)]
    c0 = time.process_time()
    rules = build_rules([("big", lines)])
    build = time.process_time() - c0
    c_rules, _ = cpu_rate(rules.match, urls, repeat)
    dset = domains

    def naive(u):
        h = (urlsplit(u).hostname or "").lower()
        return any(h == d or h.endswith("." + d) for d in dset)

    sample = urls[:200]
    c_naive, _ = cpu_rate(naive, sample, 1)
    hits = sum(rules.match(u) is not None for u in urls)
    assert [naive(u) for u in sample] == [rules.match(u) is not None for u in sample]  # same answers
    print(f"\ntext checks on {len(rows):,} real LAION rows")
    print(f"  toxicity (alt-profanity-check, batches of 256): {tox_rate:,.0f} captions/CPU-s")
    print(f"  URL rules ({len(rules):,} rules, built in {build:.2f} CPU-s): {c_rules:,.0f} URLs/CPU-s, "
          f"{hits} blocked; naive scan of the {len(dset):,} domain rules: {c_naive:,.1f} URLs/CPU-s "
          f"(x{c_rules / c_naive:,.0f})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=10**6)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"bench_safety: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
          f"python {platform.python_version()}, numpy {np.__version__}")
    images = photos()
    image_checks(images, a.repeat, rng)
    pdq_bench(images, a.entries, a.queries, a.repeat, rng)
    text_bench(a.repeat, rng)
    print(f"load at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
