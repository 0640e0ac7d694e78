"""Near-duplicate removal: captions by MinHash LSH, images by pHash, then components.

In: records (dicts with ``uid``, ``caption``, after download also ``image`` bytes and maybe
``clip_score``).  Out: the stage dict ``{"kept", "counts", "rejects", "stats"}``: one record
per connected component of the verified near-duplicate graph survives (highest score, then
smallest uid); the others are dropped with the stage's status.  Stats: a cluster-size
histogram ``{size: count}`` of components with >= 2 members, and the number of nodes whose
component labelling had not converged.

Steps (each a Beam step; nothing is collected on one worker):
  1. candidate keys: caption LSH bands (MinHash, :mod:`.lsh`) or pHash multi-index bands;
  2. GroupByKey per key -> candidate pairs inside each bucket (all pairs up to
     ``bucket_all_pairs`` members, else each member with the next ``bucket_window``);
  3. verification: Hamming <= ``phash_distance`` in the bucket; caption Jaccard estimate
     >= ``jaccard_threshold`` after joining both captions to the pair;
  4. connected components (:mod:`.components`), 5. keeper per component, 6. join back.
"""
from __future__ import annotations

from typing import Any, Iterable

import apache_beam as beam

from clipcurate.dedupe import lsh, minhash
from clipcurate.dedupe.components import ConnectedComponents
from clipcurate.dedupe.config import DedupeConfig
from clipcurate.dedupe.keep import apply_drops, choose
from clipcurate.dedupe.phash import phash_bytes, to_int

Summary = tuple[str, str, str | None, float | None]   # uid, caption, phash hex, score


def summary(record: dict[str, Any]) -> Summary:
    return (record["uid"], record.get("caption") or "", record.get("phash"), record.get("clip_score"))


def bucket_index_pairs(n: int, all_pairs: int, window: int) -> Iterable[tuple[int, int]]:
    """Index pairs compared inside a bucket of n (sorted) members."""
    reach = n if n <= all_pairs else window + 1
    for i in range(n):
        for j in range(i + 1, min(n, i + reach)):
            yield i, j


def _edge(a: tuple[str, float | None], b: tuple[str, float | None]):
    """((small uid, large uid), (score small, score large))."""
    if a[0] > b[0]:
        a, b = b, a
    return (a[0], b[0]), (a[1], b[1])


# -- candidate generation -------------------------------------------------------------

class _CaptionKeys(beam.DoFn):
    """Batches of summaries -> (band key, (uid, score)); empty captions take no part."""

    def __init__(self, cfg: DedupeConfig):
        self.cfg = cfg
        self.bands, self.rows = lsh.lsh_params(cfg.jaccard_threshold, cfg.num_perm, cfg.lsh_bands, cfg.lsh_rows)

    def process(self, batch: list[Summary]):
        c = self.cfg
        sig = minhash.signatures([s[1] for s in batch], c.shingle, c.ngram, c.num_perm, c.minhash_seed,
                                 c.minhash_scheme)
        empty = minhash.is_empty(sig)
        for s, keys, e in zip(batch, lsh.minhash_band_keys(sig, self.bands, self.rows), empty):
            if not e:
                for k in keys:
                    yield k, (s[0], s[3])


def caption_bucket_pairs(members: Iterable[tuple[str, float | None]], all_pairs: int, window: int):
    """Candidate edges of one caption LSH bucket (not yet verified)."""
    ms = sorted(dict(members).items())
    for i, j in bucket_index_pairs(len(ms), all_pairs, window):
        yield _edge(ms[i], ms[j])


def image_keys(s: Summary, distance: int, bands: int):
    if s[2]:
        h = to_int(s[2])
        for k in lsh.phash_keys(h, distance, bands):
            yield k, (s[0], h, s[3])


def image_bucket_pairs(members: Iterable[tuple[str, int, float | None]], distance: int,
                       all_pairs: int, window: int):
    """Edges of one pHash bucket whose Hamming distance is <= ``distance``."""
    ms = sorted({m[0]: m for m in members}.values(), key=lambda m: (m[1], m[0]))
    for i, j in bucket_index_pairs(len(ms), all_pairs, window):
        if lsh.hamming(ms[i][1], ms[j][1]) <= distance:
            yield _edge((ms[i][0], ms[i][2]), (ms[j][0], ms[j][2]))


# -- caption verification -------------------------------------------------------------

def _pair_halves(element):
    (u, v), _ = element
    return [(u, (u, v)), (v, (u, v))]


def _send_caption(element):
    uid, grouped = element
    summaries = list(grouped["s"])
    if not summaries:
        return
    _, caption, _, score = summaries[0]
    for pair in set(grouped["p"]):
        yield pair, (uid, caption, score)


class _VerifyCaptions(beam.DoFn):
    """(pair, [(uid, caption, score) x 2]) -> the edge when the Jaccard estimate >= threshold."""

    def __init__(self, cfg: DedupeConfig):
        self.cfg = cfg

    def process(self, element):
        pair, ends = element
        ends = sorted({e[0]: e for e in ends}.values())
        if len(ends) != 2:
            return
        c = self.cfg
        sig = minhash.signatures([ends[0][1], ends[1][1]], c.shingle, c.ngram, c.num_perm, c.minhash_seed,
                                 c.minhash_scheme)
        if minhash.is_empty(sig).any():
            return
        if minhash.jaccard_estimate(sig[0], sig[1]) >= c.jaccard_threshold:
            yield _edge((ends[0][0], ends[0][2]), (ends[1][0], ends[1][2]))


class VerifyCaptionPairs(beam.PTransform):
    """Candidate edges + summaries -> edges whose captions are near-duplicates."""

    def __init__(self, cfg: DedupeConfig):
        super().__init__()
        self.cfg = cfg

    def expand(self, pcolls):
        candidates, summaries = pcolls
        halves = candidates | "Halves" >> beam.FlatMap(_pair_halves)
        by_uid = summaries | "KeyS" >> beam.Map(lambda s: (s[0], s))
        return ({"s": by_uid, "p": halves}
                | "JoinCaptions" >> beam.CoGroupByKey()
                | "Send" >> beam.FlatMap(_send_caption)
                | "GroupPair" >> beam.GroupByKey()
                | "Verify" >> beam.ParDo(_VerifyCaptions(self.cfg)))


# -- components -> drops --------------------------------------------------------------

def _member(element):
    uid, grouped = element
    labels, scores = list(grouped["label"]), list(grouped["score"])
    if labels:
        yield labels[0], (uid, scores[0] if scores else None)


def _decide(label, members):
    keeper, losers = choose(members)
    yield beam.pvalue.TaggedOutput("size", len(losers) + 1)
    for uid in losers:
        yield uid, keeper


def _histogram(pairs):
    return {str(k): v for k, v in sorted(pairs)}


class ComponentDrops(beam.PTransform):
    """Verified edges ((u, v), (su, sv)) -> {"drops": (uid, keeper), "stats": [...]}."""

    def __init__(self, rounds: int, stats_name: str):
        super().__init__()
        self.rounds, self.stats_name = rounds, stats_name

    def expand(self, edges):
        name = self.stats_name
        distinct = (edges
                    | "GroupEdge" >> beam.GroupByKey()
                    | "FirstScores" >> beam.MapTuple(lambda pair, scores: (pair, list(scores)[0])))
        cc = distinct | "Pairs" >> beam.Keys() | "CC" >> ConnectedComponents(self.rounds)
        scores = distinct | "NodeScores" >> beam.FlatMapTuple(
            lambda pair, sc: [(pair[0], sc[0]), (pair[1], sc[1])])
        decided = ({"label": cc["labels"], "score": scores}
                   | "JoinScores" >> beam.CoGroupByKey()
                   | "Member" >> beam.FlatMap(_member)
                   | "GroupComponent" >> beam.GroupByKey()
                   | "Keeper" >> beam.FlatMapTuple(_decide).with_outputs("size", main="drops"))
        hist = (decided.size
                | "SizeOne" >> beam.Map(lambda s: (s, 1))
                | "SizeSum" >> beam.CombinePerKey(sum)
                | "SizeList" >> beam.combiners.ToList()
                | "Hist" >> beam.Map(lambda ps: (name, _histogram(ps))))
        bad = cc["unconverged"] | "BadStat" >> beam.Map(lambda n: (f"{name}_unconverged", n))
        stats = (hist, bad) | "Stats" >> beam.Flatten()
        return {"drops": decided.drops, "stats": stats}


# -- the stages -----------------------------------------------------------------------

class _NearDup(beam.PTransform):
    def __init__(self, cfg: DedupeConfig, stage: str, reason: str, mode: str, stats_name: str,
                 keep_rejects: bool, hash_images: bool):
        super().__init__()
        self.cfg, self.stage, self.reason, self.mode = cfg, stage, reason, mode
        self.stats_name, self.keep_rejects, self.hash_images = stats_name, keep_rejects, hash_images

    def expand(self, records):
        c = self.cfg
        if self.hash_images:
            records = records | "PHash" >> beam.Map(add_phash)
        summaries = records | "Summary" >> beam.Map(summary)
        if self.mode in ("both", "image"):
            candidates = (summaries
                          | "ImageKeys" >> beam.FlatMap(image_keys, c.phash_distance, c.phash_bands)
                          | "GroupImage" >> beam.GroupByKey()
                          | "ImagePairs" >> beam.FlatMapTuple(
                              lambda _, ms: image_bucket_pairs(ms, c.phash_distance, c.bucket_all_pairs,
                                                               c.bucket_window)))
        else:
            candidates = (summaries
                          | "Batch" >> beam.BatchElements(min_batch_size=max(1, c.batch_size // 8),
                                                          max_batch_size=c.batch_size)
                          | "CaptionKeys" >> beam.ParDo(_CaptionKeys(c))
                          | "GroupCaption" >> beam.GroupByKey()
                          | "CaptionPairs" >> beam.FlatMapTuple(
                              lambda _, ms: caption_bucket_pairs(ms, c.bucket_all_pairs, c.bucket_window)))
        if self.mode in ("both", "caption"):
            edges = (candidates, summaries) | "VerifyCaptions" >> VerifyCaptionPairs(c)
        else:
            edges = candidates
        comp = edges | "Components" >> ComponentDrops(c.cc_rounds, self.stats_name)
        out = apply_drops(records, comp["drops"], "Apply", self.stage, self.reason, self.keep_rejects)
        out["stats"] = comp["stats"]
        return out


def add_phash(record: dict[str, Any]) -> dict[str, Any]:
    """Set ``phash`` (hex) from ``image`` bytes when missing; undecodable images get None."""
    if record.get("phash"):
        return record
    return dict(record, phash=phash_bytes(record.get("image")))


class CaptionNearDedupe(_NearDup):
    """Stage ``near_dup_caption`` (text only, before download): caption MinHash-LSH near-dups
    are dropped as ``near_dup_caption``; stats ``near_dup_caption_clusters``."""

    def __init__(self, cfg: DedupeConfig, seed: int = 0, keep_rejects: bool = False):
        super().__init__(cfg, "near_dup_caption", "near_dup_caption", "caption", "near_dup_caption_clusters",
                         keep_rejects, hash_images=False)
        self.seed = seed  # the result is deterministic; no random draw is made


_REASONS = {"both": "near_dup", "image": "near_dup_image", "caption": "near_dup_caption"}


class NearDedupe(_NearDup):
    """Stage ``near_dup`` (after download): sets ``phash`` and drops near-duplicates by
    ``cfg.mode``: ``both`` (image and caption, status ``near_dup``), ``image``
    (``near_dup_image``) or ``caption`` (``near_dup_caption``); stats ``near_dup_clusters``."""

    def __init__(self, cfg: DedupeConfig, seed: int = 0, keep_rejects: bool = False):
        super().__init__(cfg, "near_dup", _REASONS[cfg.mode], cfg.mode, "near_dup_clusters", keep_rejects,
                         hash_images=True)
        self.seed = seed
