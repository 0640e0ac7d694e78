"""MinHash, LSH and pHash cores against datasketch / imagehash, on real captions and images."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasketch import MinHash, MinHashLSH

from clipcurate.dedupe import lsh, minhash
from clipcurate.dedupe.components import components_reference, large_star, small_star, star_labels
from clipcurate.dedupe.config import DedupeConfig
from clipcurate.dedupe.keep import choose
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
CAPTIONS = pq.read_table(DATA / "img2dataset-tests" / "test_10000.parquet").column("TEXT").to_pylist()
ODD = ["", None, "a", "Größe ÜBER alles — 日本語のテキスト!", "tab\tand\x0bvertical\x00nul_under_score",
       "x" * 300, "  spaced   out  ", "ﬁ ligature ＦＵＬＬ width", "naïve café", "emoji 😀 here"]


@pytest.mark.parametrize("kind,n,scheme", [("char", 4, "affine32"), ("word", 3, "affine32"),
                                           ("char", 5, "legacy"), ("word", 1, "legacy")])
def test_signatures_equal_datasketch(kind, n, scheme):
    caps = CAPTIONS[:150] + ODD
    sig = minhash.signatures(caps, kind, n, 128, 1, scheme)
    for cap, row in zip(caps, sig):
        m = MinHash(num_perm=128, seed=1, scheme=scheme)
        for s in minhash.shingles(minhash.normalize_caption(cap), kind, n):
            m.update(s)
        assert np.array_equal(m.hashvalues.astype(np.uint32), row), cap
    # Jaccard estimates agree with datasketch's on the same inputs
    ms = []
    for row in sig[:20]:
        ms.append(MinHash(hashvalues=row.astype(m.hashvalues.dtype), seed=1, scheme=scheme))
    for i, j in itertools.combinations(range(20), 2):
        assert minhash.jaccard_estimate(sig[i], sig[j]) == ms[i].jaccard(ms[j])


def test_kernel_equals_reference_on_all_captions():
    sig = minhash.signatures(CAPTIONS[:1000] + ODD)
    ref = minhash.signatures_reference(CAPTIONS[:1000] + ODD)
    assert np.array_equal(sig, ref)
    assert minhash.is_empty(sig[1000:1002]).all() and not minhash.is_empty(sig[:1000]).any()


def test_normalisation():
    assert minhash.normalize_caption("  Hello,   WORLD!!  ") == "hello world"
    assert minhash.normalize_caption("ＦＵＬＬ-width_x") == "full width x"
    assert minhash.normalize_caption("Größe über") == "größe über"
    assert minhash.shingles("ab cd", "char", 4) == [b"ab c", b"b cd"]
    assert minhash.shingles("ab cd ef", "word", 2) == [b"ab cd", b"cd ef"]
    assert minhash.shingles("ab", "word", 3) == [b"ab"] and minhash.shingles("", "char", 3) == []


def test_estimate_tracks_exact_jaccard():
    caps = [c for c in CAPTIONS[:400] if len(c) > 30]
    sig = minhash.signatures(caps)
    sets = [set(minhash.shingles(minhash.normalize_caption(c), "char", 4)) for c in caps]
    errs = []
    for i in range(len(caps) - 1):
        a, b = sets[i], sets[i] | set(list(sets[i + 1])[:len(sets[i + 1]) // 2])
        exact = len(a & b) / len(a | b)
        s2 = minhash.signature_of_shingles(sorted(b))
        errs.append(abs(minhash.jaccard_estimate(sig[i], s2) - exact))
    assert np.mean(errs) < 0.04   # 128 permutations: standard error <= 0.044


def test_lsh_params_and_candidates_match_datasketch():
    for t in (0.5, 0.8, 0.9):
        ref = MinHashLSH(threshold=t, num_perm=128)
        assert lsh.lsh_params(t, 128) == (ref.b, ref.r)
    b, r = lsh.lsh_params(0.5, 128)
    caps = CAPTIONS[:1500] + [c.upper() + "!" for c in CAPTIONS[:100]] + [c + " sale" for c in CAPTIONS[100:200]]
    sig = minhash.signatures(caps)
    index = MinHashLSH(threshold=0.5, num_perm=128)
    hs = []
    for i, row in enumerate(sig):
        m = MinHash(hashvalues=row, seed=1, scheme="affine32")
        hs.append(m)
        index.insert(str(i), m)
    ref_pairs = {tuple(sorted((i, int(j)))) for i, m in enumerate(hs) for j in index.query(m) if int(j) != i}
    keys = lsh.minhash_band_keys(sig, b, r)
    buckets = {}
    for i, ks in enumerate(keys):
        for k in ks:
            buckets.setdefault(k, []).append(i)
    ours = {p for members in buckets.values() for p in itertools.combinations(sorted(members), 2)}
    assert ours == ref_pairs and len(ours) >= 200


def test_phash_keys_find_every_pair_within_distance():
    rng = np.random.default_rng(0)
    for k in (2, 4, 6, 9):
        for _ in range(200):
            h = int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2))
            flips = rng.choice(64, size=int(rng.integers(0, k + 1)), replace=False)
            g = h
            for f in flips:
                g ^= 1 << int(f)
            assert set(lsh.phash_keys(h, k)) & set(lsh.phash_keys(g, k)), (k, len(flips))


def test_components_reference_agrees_with_star_steps():
    rng = np.random.default_rng(1)
    ids = [f"{int(x):016x}" for x in rng.integers(0, 2**62, 400)]
    edges = {(ids[i], ids[i + 1]) for i in range(150)} | {tuple(rng.choice(ids[150:], 2, replace=False)) for _ in range(150)}
    edges = {(a, b) for a, b in edges if a != b}
    current = set(edges)
    for _ in range(12):   # the Beam transform's steps, run as plain functions
        nb = {}
        for u, v in current:
            nb.setdefault(u, set()).add(v)
            nb.setdefault(v, set()).add(u)
        large = {e for n, s in nb.items() for e in large_star(n, s)}
        small = {}
        for u, v in large:
            small.setdefault(max(u, v), set()).add(min(u, v))
        current = {e for n, s in small.items() for e in small_star(n, s)}
    links = {}
    for u, v in current:
        hi, lo = max(u, v), min(u, v)
        links.setdefault(hi, []).append(("up", lo))
        links.setdefault(lo, []).append(("down", hi))
    labels = {n: lab for node, ls in links.items() for n, lab, ok in star_labels(node, ls) if ok}
    assert labels == components_reference([], edges)


def test_keeper_rule():
    assert choose([("b", None), ("a", None)]) == ("a", ["b"])
    assert choose([("a", 0.1), ("b", 0.3), ("c", None)]) == ("b", ["a", "c"])
    assert choose([("b", 0.3), ("a", 0.3)]) == ("a", ["b"])


def test_config_validation():
    with pytest.raises(ValueError, match="mode"):
        DedupeConfig(mode="pixels")
    with pytest.raises(ValueError, match="lsh_bands"):
        DedupeConfig(lsh_bands=10, lsh_rows=20)


def test_decontam_index_phash_and_embedding(tmp_path):
    """The eval index finds a re-encoded eval image by pHash, and by embedding cosine when
    an embedder is given (a plain pixel embedder stands in for a CLIP model here)."""
    import io
    import tarfile

    from PIL import Image

    from clipcurate.dedupe.decontam import build_index
    from clipcurate.dedupe.phash import phash_bytes
    from clipcurate.dedupe.synth import encode_jpeg

    imgs = sorted((DATA / "imagenet-sample-images-subset").glob("*.JPEG"))[:6]
    with tarfile.open(tmp_path / "eval-000.tar", "w") as tar:   # a webdataset shard
        for p in imgs[:4]:
            data = p.read_bytes()
            info = tarfile.TarInfo(f"{p.stem}.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

    def embed(images):
        v = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("L").resize((16, 16)), np.float32).ravel()
                      for b in images])
        v -= v.mean(axis=1, keepdims=True)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    index = build_index([f"wds={tmp_path / 'eval-000.tar'}"], 6, embedder=embed)
    assert index.images == {"wds": 4} and index.emb.shape == (4, 256)
    copy = encode_jpeg(Image.open(imgs[2]).convert("RGB").resize((200, 150)), 60)
    assert index.match_phash(phash_bytes(copy)) == ("wds", f"{tmp_path / 'eval-000.tar'}:{imgs[2].stem}.jpg")
    assert index.match_embedding(embed([copy])[0], 0.95)[1].endswith(imgs[2].stem + ".jpg")
    other = imgs[5].read_bytes()
    assert index.match_phash(phash_bytes(other)) is None
    assert index.match_embedding(embed([other])[0], 0.95) is None
