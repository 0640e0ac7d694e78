"""Stage ``safety_text``: URL blocklists, opt-out lists and the caption toxicity score, before download.

In: candidate records (``url``, ``caption``).  Out: the stage dict ``{"kept", "counts",
"rejects", "stats"}``.  A URL matching a blocklist is dropped as ``blocklisted``, one matching
an opt-out list as ``opted_out`` (blocklists are checked first); the reject carries
``safety_list`` (the list's name) and ``safety_match`` (the rule that matched).  With
``toxic_text`` every kept record gets ``toxic_score``; with ``toxic_threshold`` a score at or
above it is dropped as ``toxic_text``.  Stats: ``("safety_text", {"lists": [identity...],
"models": [...]})`` with each list's name, file name, sha256 and entry count.

Cost: the rules are merged into hash tables once per worker process (``Shared``); a URL costs a
few set lookups whatever the list sizes (docs/benchmarks.md, "Safety").
"""
from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.utils.shared import Shared

from clipcurate.pipelines.stage import BatchCountingDoFn, apply_stage
from clipcurate.safety.config import SafetyConfig
from clipcurate.safety.lists import check_names, read_lists
from clipcurate.safety.urls import UrlRules, build_rules
from clipcurate.schemas.status import OK

STAGE = "safety_text"


class TextSafety:
    """Pure core: ``decide_batch(records) -> [(status, record)]``."""

    def __init__(self, cfg: SafetyConfig):
        check_names(cfg.url_blocklists, "safety.url_blocklists")
        check_names(cfg.optout_lists, "safety.optout_lists")
        self.cfg = cfg
        self.identities: list[dict[str, Any]] = []
        self.blocklist = self._rules(cfg.url_blocklists, "url_blocklist")
        self.optout = self._rules(cfg.optout_lists, "optout")
        self.toxic = None
        if cfg.toxic_on:
            from clipcurate.safety.text import ToxicScorer
            self.toxic = ToxicScorer()

    def _rules(self, specs: list[str], kind: str) -> UrlRules:
        named, identities = read_lists(specs, kind)
        self.identities += identities
        return build_rules(named)

    def stats(self) -> dict[str, Any]:
        return {"lists": self.identities, "models": [self.toxic.identity()] if self.toxic else [],
                "toxic_threshold": self.cfg.toxic_threshold}

    def decide_batch(self, records: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]] | None] = []
        for rec in records:
            url = rec.get("url")
            hit = self.blocklist.match(url)
            if hit:
                out.append(("blocklisted", dict(rec, safety_list=hit[0], safety_match=hit[1])))
                continue
            hit = self.optout.match(url)
            if hit:
                out.append(("opted_out", dict(rec, safety_list=hit[0], safety_match=hit[1])))
                continue
            out.append(None)
        if self.toxic is not None:
            todo = [i for i, o in enumerate(out) if o is None]
            scores = self.toxic.scores([records[i].get("caption") for i in todo])
            thr = self.cfg.toxic_threshold
            for i, s in zip(todo, scores):
                rec = dict(records[i], toxic_score=float(s))
                out[i] = ("toxic_text" if thr is not None and s >= thr else OK, rec)
        return [o if o is not None else (OK, records[i]) for i, o in enumerate(out)]


class _Holder:
    def __init__(self, core: TextSafety):
        self.core = core


class _Decide(BatchCountingDoFn):
    def __init__(self, cfg: SafetyConfig, shared: Shared, keep_rejects: bool):
        super().__init__(STAGE, keep_rejects, batch_size=max(cfg.batch_size, 256))
        self.cfg, self.shared = cfg, shared
        self.core: TextSafety | None = None

    def setup(self):
        self.core = self.shared.acquire(lambda: _Holder(TextSafety(self.cfg)), tag=repr(self.cfg)).core

    def decide_batch(self, records, **_):
        return self.core.decide_batch(records)


class SafetyText(beam.PTransform):
    """Stage ``safety_text`` (see the module docstring).  Lists are read at construction, so a
    missing or malformed list fails before the pipeline runs, naming it."""

    def __init__(self, cfg: SafetyConfig, keep_rejects: bool = False):
        super().__init__()
        self.cfg, self.keep_rejects = cfg, keep_rejects
        self._stats = TextSafety(cfg).stats()

    def expand(self, records):
        out = apply_stage(records, "Check", _Decide(self.cfg, Shared(), self.keep_rejects))
        stats = records.pipeline | "Stats" >> beam.Create([(STAGE, self._stats)])
        return {**out, "stats": stats}
