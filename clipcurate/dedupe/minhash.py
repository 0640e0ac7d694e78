"""Caption MinHash signatures, vectorised, in datasketch's hash family.

In: captions (``str``).  Out: a ``(n, num_perm)`` uint32 matrix of MinHash signatures,
bit-identical to ``datasketch.MinHash(num_perm, seed, scheme)`` updated with the same
shingles (the UTF-8 bytes of each shingle): the shingle hash is datasketch's
``sha1_hash32`` (first 4 bytes of SHA-1, little endian), the permutations are
datasketch's own (``MinHash(...).permutations``), and the scheme is datasketch 2.0's
``affine32`` (MurmurHash3 fmix32 pre-mix, then ``a*h + b mod 2**32``) or ``legacy``
(``(a*h + b) mod (2**61 - 1)``, low 32 bits).

Cost: ASCII captions are normalised in the numba kernel (others in Python); shingling, SHA-1 and the
permutation minimum run in one numba-compiled loop over the UTF-8 buffer (no Python
object per shingle).  :func:`signatures_reference` is the plain hashlib/numpy path
(the same numbers, ~50x slower) used to cross-check the kernel.
"""
from __future__ import annotations

import hashlib
import struct
import unicodedata
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

try:
    import numba
except ImportError:  # pragma: no cover - numba is a declared dependency
    numba = None

_U64 = np.uint64
_M32 = _U64(0xFFFFFFFF)
_PRIME = _U64((1 << 61) - 1)
_EMPTY = np.uint32(0xFFFFFFFF)


# -- normalisation and shingles ----------------------------------------------------

def normalize_caption(caption: str | None) -> str:
    """NFKC, lower case, every character that is not a letter, number or mark -> space,
    whitespace collapsed and trimmed.  (This is the definition; the numba kernel does
    the same for ASCII rows, see tests.)"""
    text = unicodedata.normalize("NFKC", caption or "").lower()
    return " ".join(text.translate(_KEEP).split())


class _KeepTable(dict):
    """str.translate table: letters, numbers and marks map to themselves, all else to a
    space; filled lazily, one entry per distinct code point."""

    def __missing__(self, cp: int):
        value = None if unicodedata.category(chr(cp))[0] in "LNM" else " "
        self[cp] = value if value is not None else cp
        return self[cp]


_KEEP = _KeepTable()


def normalize_captions(captions: Sequence[str | None]) -> list[str]:
    """:func:`normalize_caption` of each caption."""
    return [normalize_caption(c) for c in captions]


def shingles(normalized: str, kind: str, n: int) -> list[bytes]:
    """The shingles of one *normalised* caption as UTF-8 bytes (reference, pure Python).

    ``char``: every n code points; ``word``: every n consecutive words joined by one
    space.  A text shorter than n units is one shingle; an empty text has none."""
    units = list(normalized) if kind == "char" else (normalized.split(" ") if normalized else [])
    if not units:
        return []
    sep = "" if kind == "char" else " "
    if len(units) <= n:
        return [sep.join(units).encode()]
    return [sep.join(units[i:i + n]).encode() for i in range(len(units) - n + 1)]


@lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's permutation parameters ``(a, b)`` as uint64 arrays (taken from
    datasketch itself, so the family cannot drift)."""
    from datasketch import MinHash
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=scheme).permutations
    return np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)


# -- reference path (hashlib + numpy) -----------------------------------------------

def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> _U64(16))
    h = (h * _U64(0x85EBCA6B)) & _M32
    h = h ^ (h >> _U64(13))
    h = (h * _U64(0xC2B2AE35)) & _M32
    return h ^ (h >> _U64(16))


def signature_of_shingles(items: Iterable[bytes], num_perm: int = 128, seed: int = 1,
                          scheme: str = "affine32") -> np.ndarray:
    """Signature of one shingle set with hashlib + numpy (reference for the kernel)."""
    a, b = permutations(num_perm, seed, scheme)
    hv = np.array([struct.unpack("<I", hashlib.sha1(s).digest()[:4])[0] for s in items], dtype=np.uint64)
    if hv.size == 0:
        return np.full(num_perm, _EMPTY, dtype=np.uint32)
    with np.errstate(over="ignore"):
        if scheme == "legacy":
            phv = ((hv[:, None] * a[None, :] + b[None, :]) % _PRIME) & _M32
        else:
            phv = (_fmix32(hv)[:, None] * a[None, :] + b[None, :]) & _M32
    return phv.min(axis=0).astype(np.uint32)


def signatures_reference(captions: Sequence[str | None], kind: str = "char", n: int = 4,
                         num_perm: int = 128, seed: int = 1, scheme: str = "affine32") -> np.ndarray:
    """Same output as :func:`signatures`, computed caption by caption in Python."""
    texts = normalize_captions(captions)
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    for i, t in enumerate(texts):
        out[i] = signature_of_shingles(shingles(t, kind, n), num_perm, seed, scheme)
    return out


# -- vectorised path (numba) ----------------------------------------------------------

def _njit(*args, **kwargs):
    """numba.njit with the on-disk cache, or a no-op when numba is missing (the kernels
    are then never called: :func:`_kernel` raises with an install hint)."""
    if numba is None:
        return lambda f: f
    return numba.njit(*args, **kwargs)


M = np.uint64(0xFFFFFFFF)
LANES = 16


@_njit(cache=True)
def sha1_block(w, st):
    """One SHA-1 compression of a 16-word block per lane: w (80, L), st (5, L)."""
    L = w.shape[1]
    for t in range(16, 80):
        for l in range(L):
            x = w[t - 3, l] ^ w[t - 8, l] ^ w[t - 14, l] ^ w[t - 16, l]
            w[t, l] = ((x << np.uint64(1)) | (x >> np.uint64(31))) & M
    a = st[0].copy()
    b = st[1].copy()
    c = st[2].copy()
    d = st[3].copy()
    e = st[4].copy()
    for t in range(80):
        if t < 20:
            k = np.uint64(0x5A827999)
        elif t < 40:
            k = np.uint64(0x6ED9EBA1)
        elif t < 60:
            k = np.uint64(0x8F1BBCDC)
        else:
            k = np.uint64(0xCA62C1D6)
        for l in range(L):
            bl, cl, dl = b[l], c[l], d[l]
            if t < 20:
                f = (bl & cl) | ((~bl) & dl)
            elif t < 40 or t >= 60:
                f = bl ^ cl ^ dl
            else:
                f = (bl & cl) | (bl & dl) | (cl & dl)
            al = a[l]
            tmp = ((((al << np.uint64(5)) | (al >> np.uint64(27))) & M) + f + e[l] + k + w[t, l]) & M
            e[l] = dl
            d[l] = cl
            c[l] = ((bl << np.uint64(30)) | (bl >> np.uint64(2))) & M
            b[l] = al
            a[l] = tmp
    for l in range(L):
        st[0, l] = (st[0, l] + a[l]) & M
        st[1, l] = (st[1, l] + b[l]) & M
        st[2, l] = (st[2, l] + c[l]) & M
        st[3, l] = (st[3, l] + d[l]) & M
        st[4, l] = (st[4, l] + e[l]) & M

@_njit(cache=True)
def sha1_h32_many(data, starts, ends, out):
    """out[i] = datasketch sha1_hash32(data[starts[i]:ends[i]]), LANES messages at a time."""
    n = starts.shape[0]
    w = np.zeros((80, LANES), dtype=np.uint64)
    st = np.empty((5, LANES), dtype=np.uint64)
    init = np.array([0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0], dtype=np.uint64)
    for base in range(0, n, LANES):
        cnt = min(LANES, n - base)
        nblocks = 1
        for l in range(cnt):
            nb_l = (ends[base + l] - starts[base + l] + 8) // 64 + 1
            nblocks = max(nblocks, nb_l)
        for j in range(5):
            for l in range(LANES):
                st[j, l] = init[j]
        done = np.zeros(LANES, dtype=np.uint64)
        for blk in range(nblocks):
            w[:16, :] = 0
            for l in range(cnt):
                s, e = starts[base + l], ends[base + l]
                length = e - s
                lb = (length + 8) // 64 + 1
                if blk >= lb:
                    continue
                lo = blk * 64
                hi = min(length, lo + 64)
                for p in range(lo, hi):
                    q = p - lo
                    w[q >> 2, l] |= np.uint64(data[s + p]) << np.uint64(24 - 8 * (q & 3))
                if lo <= length < lo + 64:
                    q = length - lo
                    w[q >> 2, l] |= np.uint64(0x80) << np.uint64(24 - 8 * (q & 3))
                if blk == lb - 1:
                    bits = np.uint64(length) * np.uint64(8)
                    w[14, l] = bits >> np.uint64(32)
                    w[15, l] = bits & M
            before = st[0].copy()
            sha1_block(w, st)
            for l in range(cnt):   # lanes whose message ended earlier keep their digest
                length = ends[base + l] - starts[base + l]
                if blk >= (length + 8) // 64 + 1:
                    st[0, l] = before[l]
                elif blk == (length + 8) // 64:
                    done[l] = st[0, l]
        for l in range(cnt):
            h0 = done[l]
            out[base + l] = (((h0 & np.uint64(0xFF)) << np.uint64(24)) | ((h0 & np.uint64(0xFF00)) << np.uint64(8))
                             | ((h0 >> np.uint64(8)) & np.uint64(0xFF00)) | (h0 >> np.uint64(24)))

@_njit(cache=True)
def utf8_normalize(data, offsets, keep, out, out_offsets):
    """Per row: ASCII A-Z lowered, every code point that is not a letter, number or mark
    (``keep[cp] == 0``) -> one space, spaces collapsed and trimmed.  Rows must already be
    NFKC + lower-cased where they are not ASCII (see :func:`_fast_normalize`)."""
    o = 0
    for row in range(offsets.shape[0] - 1):
        out_offsets[row] = o
        pending = False
        p, end = offsets[row], offsets[row + 1]
        while p < end:
            c = data[p]
            if c < 0x80:
                size, cp = 1, c
            elif c < 0xE0:
                size, cp = 2, c & 0x1F
            elif c < 0xF0:
                size, cp = 3, c & 0x0F
            else:
                size, cp = 4, c & 0x07
            for q in range(1, size):
                cp = (cp << 6) | (data[p + q] & 0x3F)
            if 65 <= cp <= 90:
                cp += 32
            if cp < 0x80:
                ok = 97 <= cp <= 122 or 48 <= cp <= 57
            else:
                ok = keep[cp] != 0
            if not ok:
                pending = o > out_offsets[row]
                p += size
                continue
            if pending:
                out[o] = 32
                o += 1
                pending = False
            if size == 1:
                out[o] = cp
                o += 1
            else:
                for q in range(size):
                    out[o] = data[p + q]
                    o += 1
            p += size
    out_offsets[offsets.shape[0] - 1] = o
    return o


@_njit(cache=True)
def enumerate_shingles(data, offsets, words, n, starts, ends, rows):
    """(start, end, row) of every shingle; returns how many."""
    cnt = 0
    bounds = np.empty(offsets[-1] - offsets[0] + 2, dtype=np.int64)
    bends = np.empty_like(bounds)
    for row in range(offsets.shape[0] - 1):
        s, e = offsets[row], offsets[row + 1]
        if e <= s:
            continue
        m = 0
        if words:
            bounds[0] = s
            for p in range(s, e):
                if data[p] == 32:
                    bends[m] = p
                    m += 1
                    bounds[m] = p + 1
            bends[m] = e
            m += 1
        else:
            for p in range(s, e):
                if (data[p] & 0xC0) != 0x80:
                    bounds[m] = p
                    m += 1
            for i in range(m - 1):
                bends[i] = bounds[i + 1]
            bends[m - 1] = e
        if m <= n:
            starts[cnt], ends[cnt], rows[cnt] = s, e, row
            cnt += 1
            continue
        for i in range(m - n + 1):
            starts[cnt], ends[cnt], rows[cnt] = bounds[i], bends[i + n - 1], row
            cnt += 1
    return cnt

@_njit(cache=True)
def permute_min(hv, rows, a, b, legacy, sig):
    prime = np.uint64((1 << 61) - 1)
    P = a.shape[0]
    for i in range(hv.shape[0]):
        srow = sig[rows[i]]
        h = hv[i]
        if legacy:
            for k in range(P):
                v = ((a[k] * h + b[k]) % prime) & M
                srow[k] = min(srow[k], v)
        else:
            h = h ^ (h >> np.uint64(16))
            h = (h * np.uint64(0x85EBCA6B)) & M
            h = h ^ (h >> np.uint64(13))
            h = (h * np.uint64(0xC2B2AE35)) & M
            h = h ^ (h >> np.uint64(16))
            for k in range(P):
                srow[k] = min(srow[k], (a[k] * h + b[k]) & M)



def _sha1_kernels():
    return utf8_normalize, enumerate_shingles, sha1_h32_many, permute_min


_KERNEL = None


def _kernel():
    global _KERNEL
    if _KERNEL is None:
        if numba is None:
            raise ImportError("clipcurate.dedupe needs numba for fast MinHash: pip install 'numba>=0.60'")
        _KERNEL = _sha1_kernels()
    return _KERNEL


@lru_cache(maxsize=1)
def _keep_table() -> np.ndarray:
    """uint8 per code point: 1 for letters, numbers and marks (Unicode categories L*, N*, M*)."""
    return np.fromiter((unicodedata.category(chr(cp))[0] in "LNM" for cp in range(0x110000)),
                       dtype=np.uint8, count=0x110000)


def _fast_normalize(captions) -> tuple[np.ndarray, np.ndarray]:
    """Normalised UTF-8 bytes and int64 offsets (= :func:`normalize_caption` per row):
    non-ASCII rows get NFKC + lower case in Python (C speed), then one numba pass maps
    non letters/numbers/marks to spaces and collapses them."""
    arr = captions if isinstance(captions, (pa.Array, pa.ChunkedArray)) else pa.array(captions, pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = pc.fill_null(arr.cast(pa.string()), "")
    ascii_mask = pc.string_is_ascii(arr)
    if not pc.all(ascii_mask).as_py():
        idx = pc.indices_nonzero(pc.invert(ascii_mask))
        fixed = pa.array([unicodedata.normalize("NFKC", t).lower() for t in pc.take(arr, idx).to_pylist()],
                         pa.string())
        arr = pc.replace_with_mask(arr, pc.invert(ascii_mask), fixed)
    arr = pa.concat_arrays([arr])  # offset 0
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + len(arr) + 1].astype(np.int64)
    buf = arr.buffers()[2]
    data = np.frombuffer(buf, dtype=np.uint8) if buf is not None and buf.size else np.zeros(1, np.uint8)
    out = np.empty(max(1, int(offsets[-1] - offsets[0])), dtype=np.uint8)
    out_offsets = np.empty(len(arr) + 1, dtype=np.int64)
    _kernel()[0](data, offsets, _keep_table(), out, out_offsets)
    return out, out_offsets


def signatures(captions: Sequence[str | None] | pa.Array, kind: str = "char", n: int = 4,
               num_perm: int = 128, seed: int = 1, scheme: str = "affine32") -> np.ndarray:
    """MinHash signatures of captions: ``(len(captions), num_perm)`` uint32.

    Row i equals ``datasketch.MinHash(num_perm, seed=seed, scheme=scheme)`` updated with
    ``shingles(normalize_caption(captions[i]), kind, n)``.  An empty caption gives the
    all-0xFFFFFFFF (empty) signature."""
    if kind not in ("char", "word"):
        raise ValueError(f"shingle kind {kind!r}; choose char or word")
    _, enumerate_shingles, sha1_many, permute_min = _kernel()
    data, offsets = _fast_normalize(captions)
    sig = np.full((len(offsets) - 1, num_perm), np.uint64(_EMPTY), dtype=np.uint64)
    total = int(offsets[-1] - offsets[0]) + 1
    starts, ends, rows = (np.empty(total, dtype=np.int64) for _ in range(3))
    cnt = enumerate_shingles(data, offsets, kind == "word", n, starts, ends, rows)
    hv = np.empty(cnt, dtype=np.uint64)
    sha1_many(data, starts[:cnt], ends[:cnt], hv)
    a, b = permutations(num_perm, seed, scheme)
    permute_min(hv, rows[:cnt], a, b, scheme == "legacy", sig)
    return sig.astype(np.uint32)


def is_empty(sig: np.ndarray) -> np.ndarray:
    """Rows that are the empty signature (caption without shingles)."""
    return np.all(sig == _EMPTY, axis=-1)


def jaccard_estimate(s1: np.ndarray, s2: np.ndarray) -> np.ndarray | float:
    """Fraction of equal positions, as ``datasketch.MinHash.jaccard`` (rows broadcast)."""
    return np.mean(np.asarray(s1) == np.asarray(s2), axis=-1)
