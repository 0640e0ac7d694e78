"""Banding keys for candidate pairs: MinHash LSH (captions) and multi-index pHash (images).

In: signatures or 64-bit perceptual hashes.  Out: per item, a list of ``bytes`` keys; two
items sharing any key are a candidate pair, to be verified (estimated Jaccard, Hamming
distance) before they count as near-duplicates.

* MinHash: ``b`` bands of ``r`` rows chosen from the Jaccard threshold exactly as
  ``datasketch.MinHashLSH`` does (its ``_optimal_param``, equal false-positive and
  false-negative weights).  Key = band number + 8-byte blake2b of the band's values.
* pHash: the 64 bits are cut into ``m`` bands; a pair within Hamming distance ``k`` agrees
  on at least one band within distance ``k // m`` (pigeonhole), so every key within that
  radius of each band value is emitted.  Default ``m = min(k + 1, 4)``: radius 0 (one key
  per band) up to k = 3, and 16-bit bands with radius k // 4 beyond (k = 6: 4 x 17 keys),
  so that buckets stay small at scale.
"""
from __future__ import annotations

import hashlib
import itertools

import numpy as np


def lsh_params(threshold: float, num_perm: int, bands: int = 0, rows: int = 0) -> tuple[int, int]:
    """``(bands, rows)``: the given ones, or datasketch MinHashLSH's choice for the threshold."""
    if bands and rows:
        return bands, rows
    from datasketch.lsh import _optimal_param
    return tuple(int(x) for x in _optimal_param(threshold, num_perm, 0.5, 0.5))


def minhash_band_keys(sig: np.ndarray, bands: int, rows: int) -> list[list[bytes]]:
    """For each signature row, ``bands`` keys (1 byte band number + 8-byte digest)."""
    sig = np.ascontiguousarray(sig, dtype=np.uint32)
    out = []
    for row in sig:
        raw = row.tobytes()
        out.append([bytes([i]) + hashlib.blake2b(raw[i * rows * 4:(i + 1) * rows * 4], digest_size=8).digest()
                    for i in range(bands)])
    return out


def phash_bands(distance: int, bands: int = 0, bits: int = 64) -> list[tuple[int, int]]:
    """Bit ranges ``(start, width)`` of the hash's bands (``bits`` split evenly; 64 for pHash,
    256 for PDQ in clipcurate.safety)."""
    m = min(bands or min(distance + 1, 4), bits)
    base, extra = divmod(bits, m)
    spans, start = [], 0
    for i in range(m):
        w = base + (1 if i < extra else 0)
        spans.append((start, w))
        start += w
    return spans


def phash_keys(h: int, distance: int, bands: int = 0) -> list[bytes]:
    """Multi-index keys of one 64-bit pHash: for each band, every value within radius
    ``distance // bands`` of the band's bits (band number, radius-0 value)."""
    spans = phash_bands(distance, bands)
    radius = distance // len(spans)
    keys = []
    for i, (start, width) in enumerate(spans):
        v = (h >> start) & ((1 << width) - 1)
        for r in range(radius + 1):
            for flips in itertools.combinations(range(width), r):
                x = v
                for f in flips:
                    x ^= 1 << f
                keys.append(bytes([0xF0, i]) + x.to_bytes(8, "big"))
    return keys


def hamming(a: int, b: int) -> int:
    """Number of differing bits of two 64-bit hashes."""
    return (a ^ b).bit_count()
