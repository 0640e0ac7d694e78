"""Exact dedupe: by normalized URL (before download) and by image sha256 (after).

In: records (dicts with ``uid``, ``url`` / ``sha256``, optionally ``clip_score``).  Out: the
stage dict ``{"kept", "counts", "rejects"}``; one record per key survives (see
:mod:`clipcurate.dedupe.keep` for the rule), the rest are dropped as ``dup_url`` /
``dup_content``.  Records without a key (no sha256) pass.  Cost: one GroupByKey of the
records by key.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable

import apache_beam as beam

from clipcurate.dedupe.keep import DUP_OF, DropAnnotated, check_rule, choose
from clipcurate.pipelines.stage import apply_stage
from clipcurate.schemas.uid import normalize_url


def annotate_group(records: list[dict[str, Any]], rule: str = "smallest_uid", seed: int = 0,
                   purpose: str = "keep") -> list[dict[str, Any]]:
    """Mark every record of one key group but the keeper (``rule``, see keep.py) with ``_dup_of``."""
    if len(records) == 1:  # the usual case: a key of one record keeps it, whatever the rule
        return records
    keeper, _ = choose(((r["uid"], r.get("clip_score")) for r in records), rule, seed, purpose)
    out, kept = [], False
    for r in sorted(records, key=lambda r: r["uid"]):
        if r["uid"] == keeper and not kept:
            kept = True
            out.append(r)
        else:
            out.append(dict(r, **{DUP_OF: keeper}))
    return out


class _GroupDedupe(beam.PTransform):
    def __init__(self, stage: str, reason: str, key_fn: Callable[[dict], str | bytes | None], keep_rejects: bool,
                 rule: str = "smallest_uid", seed: int = 0):
        super().__init__()
        self.stage, self.reason, self.key_fn, self.keep_rejects = stage, reason, key_fn, keep_rejects
        self.rule, self.seed = check_rule(rule), int(seed)

    def expand(self, records):
        key_fn, rule, seed, purpose = self.key_fn, self.rule, self.seed, self.stage

        def keyed(r):
            k = key_fn(r)
            return (("k", k) if k else ("uid", r["uid"]), r)

        annotated = (records
                     | "Key" >> beam.Map(keyed)
                     | "Group" >> beam.GroupByKey()
                     | "Annotate" >> beam.FlatMapTuple(lambda _, rs: annotate_group(list(rs), rule, seed, purpose)))
        return apply_stage(annotated, "Drop", DropAnnotated(self.stage, self.reason, self.keep_rejects))


def url_key(record: dict[str, Any]) -> bytes | None:
    """blake2b-128 of the normalized URL: 16 bytes cross the GroupByKey instead of the URL (~100)."""
    url = record.get("url")
    if not url:
        return None
    return hashlib.blake2b(normalize_url(url).encode("utf-8", "surrogatepass"), digest_size=16).digest()


def content_key(record: dict[str, Any]) -> str | None:
    return record.get("sha256") or None


class ExactUrlDedupe(_GroupDedupe):
    """Stage ``dedupe_url``: one record per normalized URL; others dropped as ``dup_url``.

    ``keep`` = ``smallest_uid`` or ``random`` (a seeded draw among the URL's captions, as
    MetaCLIP 2 picks one alt text per image; ``dedupe.url_keep``).
    """

    def __init__(self, keep_rejects: bool = False, keep: str = "smallest_uid", seed: int = 0):
        super().__init__("dedupe_url", "dup_url", url_key, keep_rejects, keep, seed)


class ExactContentDedupe(_GroupDedupe):
    """Stage ``dedupe_content``: one record per image sha256; others dropped as ``dup_content``."""

    def __init__(self, keep_rejects: bool = False):
        super().__init__("dedupe_content", "dup_content", content_key, keep_rejects)
