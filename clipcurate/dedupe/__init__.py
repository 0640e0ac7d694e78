"""clipcurate.dedupe: exact dedupe (URL, content), near-dedupe (caption MinHash-LSH, image
pHash) with distributed connected components, and eval-set decontamination.

Stage transforms (each returns ``{"kept", "counts", "rejects"[, "stats"]}``):
``ExactUrlDedupe``, ``ExactContentDedupe``, ``CaptionNearDedupe``, ``NearDedupe``,
``Decontaminate``.  See docs/dedupe.md.
"""
from clipcurate.dedupe.config import DedupeConfig
from clipcurate.dedupe.decontam import Decontaminate, build_index
from clipcurate.dedupe.exact import ExactContentDedupe, ExactUrlDedupe
from clipcurate.dedupe.minhash import jaccard_estimate, signatures
from clipcurate.dedupe.near import CaptionNearDedupe, NearDedupe
from clipcurate.dedupe.phash import phash_bytes

__all__ = ["DedupeConfig", "ExactUrlDedupe", "ExactContentDedupe", "CaptionNearDedupe", "NearDedupe",
           "Decontaminate", "build_index", "signatures", "jaccard_estimate", "phash_bytes"]
