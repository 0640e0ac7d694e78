"""Image hash lists: MD5 / SHA-1 / SHA-256 of the bytes, and PDQ perceptual hashes.

In: list files as organisations share them (one hex hash a line) and downloaded image bytes.
Out: ``(list name, "algo:hex")`` of the first matching entry, or None.

* Cryptographic lists: one line = a hex digest, optionally prefixed ``md5:`` / ``sha1:`` /
  ``sha256:`` (a bare digest's algorithm is told by its length: 32, 40, 64 hex digits); a CSV
  line keeps its first field.  Stored as sorted fixed-width byte arrays (16-32 bytes an entry);
  a lookup is a binary search.
* PDQ lists: one line = 64 hex digits (256 bits; Meta's PDQ, the hash-sharing format of
  ThreatExchange and NCMEC), optionally ``pdq:``-prefixed and followed by ``,quality``.  A
  match is a Hamming distance <= ``distance``.  Index: multi-index hashing (Norouzi et al.;
  Meta's MIH does the same) on the bands of :func:`clipcurate.dedupe.lsh.phash_bands`: the 256
  bits are cut into ``bands`` bands, a hash within ``distance`` of an entry agrees with it on
  some band within radius ``distance // bands`` (pigeonhole), so a query looks up every value
  within that radius of each of its bands (16 bands, radius 1: 272 keys) in one sorted array
  of ``(band, value)`` keys (bands of <= 16 bits: a direct table of key offsets) and checks only
  those candidates' full distance.  About 4 bytes per entry and band plus the hashes (16 bands:
  ~140 MB for 10^6 entries); exact: no false negatives.

The PDQ hash of an image is pdqhash's (Meta's C++) bit vector written as hex, first bit most
significant, as ThreatExchange's Python hasher writes it; ``quality`` (0-100) is PDQ's own
measure of how much structure the image has (below 50: flat images whose hash is unreliable).
"""
from __future__ import annotations

import hashlib
import io
import itertools
import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from clipcurate.dedupe import lsh

ALGOS = {"md5": 16, "sha1": 20, "sha256": 32}
_BY_LEN = {2 * n: a for a, n in ALGOS.items()}
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_SPLIT = re.compile(r"[,;\s]")


def parse_hash_line(line: str, where: str) -> tuple[str, bytes]:
    """``(algo, digest bytes)`` of one cryptographic-list line; ValueError naming ``where``."""
    field = _SPLIT.split(line.strip(), 1)[0]
    algo, sep, value = field.partition(":")
    if not sep:
        algo, value = _BY_LEN.get(len(field), ""), field
    algo = algo.lower().replace("-", "")
    if algo not in ALGOS or len(value) != 2 * ALGOS[algo] or not _HEX.match(value):
        raise ValueError(f"{where}: {line!r} is not an MD5, SHA-1 or SHA-256 hex digest")
    return algo, bytes.fromhex(value)


def parse_pdq_line(line: str, where: str) -> bytes:
    """The 32 bytes of one PDQ-list line; ValueError naming ``where``."""
    field = _SPLIT.split(line.strip(), 1)[0]
    if field.lower().startswith("pdq:"):
        field = field[4:]
    if len(field) != 64 or not _HEX.match(field):
        raise ValueError(f"{where}: {line!r} is not a PDQ hash (64 hex digits)")
    return bytes.fromhex(field)


class DigestLists:
    """Cryptographic hash lists: per algorithm a sorted array of digests and their list."""

    def __init__(self, named_lines: Iterable[tuple[str, list[str]]]):
        self.names: list[str] = []
        per_algo: dict[str, list[tuple[bytes, int]]] = {}
        for name, lines in named_lines:
            li = len(self.names)
            self.names.append(name)
            for n, line in enumerate(lines, 1):
                algo, digest = parse_hash_line(line, f"hash list {name!r} entry {n}")
                per_algo.setdefault(algo, []).append((digest, li))
        self.tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for algo, entries in per_algo.items():
            entries.sort()  # by digest, then list order: the first list wins a shared digest
            digests = np.array([d for d, _ in entries], dtype=f"S{ALGOS[algo]}")
            self.tables[algo] = (digests, np.array([i for _, i in entries], dtype=np.int32))

    def __len__(self) -> int:
        return sum(len(d) for d, _ in self.tables.values())

    def match(self, data: bytes) -> tuple[str, str] | None:
        """``(list name, "algo:hex")`` of the image bytes' digest on a list, or None."""
        for algo in ("md5", "sha1", "sha256"):  # fixed order: the same answer on every worker
            table = self.tables.get(algo)
            if table is None:
                continue
            digest = hashlib.new(algo, data).digest()
            digests, lists = table
            i = int(np.searchsorted(digests, digest))
            # numpy's S dtype strips trailing NUL bytes; compare the stripped forms
            if i < len(digests) and digests[i] == digest.rstrip(b"\0"):
                return self.names[lists[i]], f"{algo}:{digest.hex()}"
        return None


def pdq_hash(data: bytes, max_side: int = 512) -> tuple[bytes, int] | None:
    """``(32-byte PDQ hash, quality)`` of encoded image bytes, or None when they cannot be
    decoded.  A JPEG larger than ``max_side`` is decoded at a reduced DCT scale (PDQ itself
    reduces every image to 64 x 64 first)."""
    import pdqhash
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (max_side, max_side))
            rgb = np.asarray(img.convert("RGB"))
    except Exception:  # noqa: BLE001 - any decoder failure is "not hashable"
        return None
    bits, quality = pdqhash.compute(rgb)
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes(), int(quality)


def _band_values(h: np.ndarray, width: int) -> np.ndarray:
    """(n, 256 / width) uint64: column b holds the band of bits ``b*width .. (b+1)*width - 1``
    (bit 0 = least significant of the 256-bit big-endian number) of each row of ``h``
    ((n, 32) uint8), as :func:`clipcurate.dedupe.lsh.phash_bands` numbers the bands."""
    h = np.ascontiguousarray(h, dtype=np.uint8)
    return h.view(f">u{width // 8}")[:, ::-1].astype(np.uint64)


@dataclass
class PdqMatch:
    list_name: str
    hash_hex: str
    distance: int


class PdqIndex:
    """Multi-index of PDQ hashes (see the module docstring).  ``hashes``: (n, 32) uint8."""

    def __init__(self, hashes: np.ndarray, list_ids: np.ndarray, names: list[str], distance: int, bands: int = 16):
        spans = lsh.phash_bands(distance, bands, bits=256)
        widths = {w for _, w in spans}
        if len(widths) != 1 or next(iter(widths)) % 8 or next(iter(widths)) > 32:
            raise ValueError(f"pdq bands={bands}: bands must split 256 bits into equal whole bytes of <= 32 bits "
                             f"(8, 16 or 32 bands)")
        self.width = next(iter(widths))
        self.spans, self.distance, self.names = spans, distance, names
        self.radius = distance // len(spans)
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint8).reshape(-1, 32)
        self.list_ids = np.asarray(list_ids, dtype=np.int32)
        self.words = self.hashes.view(">u8").astype(np.uint64)  # (n, 4) for the full distance
        self.masks = np.array([sum(1 << f for f in flips) for r in range(self.radius + 1)
                               for flips in itertools.combinations(range(self.width), r)], dtype=np.uint64)
        if [s for s, _ in spans] != [b * self.width for b in range(len(spans))]:
            raise ValueError(f"pdq bands {spans} are not consecutive")
        n = len(self.hashes)
        self.band_ids = np.arange(len(spans), dtype=np.uint64) << np.uint64(self.width)
        keys = (self.band_ids[None, :] | _band_values(self.hashes, self.width)).T.ravel()  # band-major
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.rows = (order % max(n, 1)).astype(np.int32)
        # bands of <= 16 bits: a direct table of where each key's run starts (no binary search)
        self.starts = None
        if self.width <= 16:
            counts = np.bincount(self.keys.astype(np.int64), minlength=len(spans) << self.width)
            self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            self.keys = None  # the table replaces them

    def __len__(self) -> int:
        return len(self.hashes)

    @classmethod
    def from_lists(cls, named_lines: Iterable[tuple[str, list[str]]], distance: int, bands: int = 16) -> "PdqIndex":
        names, hashes, ids = [], [], []
        for name, lines in named_lines:
            li = len(names)
            names.append(name)
            for n, line in enumerate(lines, 1):
                hashes.append(parse_pdq_line(line, f"PDQ list {name!r} entry {n}"))
                ids.append(li)
        arr = np.frombuffer(b"".join(hashes), np.uint8).reshape(-1, 32) if hashes else np.zeros((0, 32), np.uint8)
        return cls(arr, np.array(ids, np.int32), names, distance, bands)

    def candidates(self, h: bytes) -> np.ndarray:
        """Rows sharing some band within the radius with ``h`` (a superset of the matches;
        a row appears once per band it shares)."""
        q = _band_values(np.frombuffer(h, np.uint8).reshape(1, 32), self.width)[0]
        probe = (self.band_ids[:, None] | (q[:, None] ^ self.masks[None, :])).ravel()
        if self.starts is not None:
            lo, hi = self.starts[probe.astype(np.int64)], self.starts[probe.astype(np.int64) + 1]
        else:
            lo, hi = np.searchsorted(self.keys, probe, "left"), np.searchsorted(self.keys, probe, "right")
        lens = hi - lo
        total = int(lens.sum())
        if not total:
            return np.zeros(0, np.int32)
        offsets = np.cumsum(lens) - lens
        pos = np.arange(total) - np.repeat(offsets, lens) + np.repeat(lo, lens)
        return self.rows[pos]  # a row may repeat (it shares several bands with h)

    def match(self, h: bytes | None) -> PdqMatch | None:
        """The nearest entry within the distance (ties: the earlier list, then the earlier
        entry), or None."""
        if h is None or not len(self.hashes):
            return None
        rows = self.candidates(h)
        if not len(rows):
            return None
        qw = np.frombuffer(h, ">u8").astype(np.uint64)
        d = np.bitwise_count(self.words[rows] ^ qw).sum(axis=1)
        ok = d <= self.distance
        if not ok.any():
            return None
        rows, d = rows[ok], d[ok]
        best = np.lexsort((rows, self.list_ids[rows], d))[0]
        r = int(rows[best])
        return PdqMatch(self.names[self.list_ids[r]], self.hashes[r].tobytes().hex(), int(d[best]))


def linear_scan(words: np.ndarray, h: bytes, distance: int) -> np.ndarray:
    """Rows of ``words`` ((n, 4) uint64) within ``distance`` of ``h``: the naive baseline."""
    qw = np.frombuffer(h, ">u8").astype(np.uint64)
    return np.flatnonzero(np.bitwise_count(words ^ qw).sum(axis=1) <= distance)
