"""ScoreFilter: keep rows above a threshold or a global top fraction (stage ``score_filter``).

Imports no torch, so workers that only filter start fast.  The cut logic is in :mod:`.cut`.
"""
from __future__ import annotations

import array
from typing import Any

import apache_beam as beam
import numpy as np

from clipcurate.pipelines.stage import COUNTS, REJECTS, CountingDoFn
from clipcurate.scoring import cut as cutlib
from clipcurate.scoring.config import ScoringConfig


class _ScoreArray(beam.CombineFn):
    """All scores as a compact float64 array; output sorted descending."""

    def create_accumulator(self):
        return array.array("d")

    def add_input(self, acc, score):
        acc.append(score)
        return acc

    def merge_accumulators(self, accs):
        out = array.array("d")
        for a in accs:
            out.extend(a)
        return out

    def extract_output(self, acc):
        return np.sort(np.frombuffer(acc, dtype=np.float64) if len(acc) else np.zeros(0))[::-1]


class _FilterDecide(CountingDoFn):
    """Keep a record iff the cut (a side input) keeps its (clip_score, uid)."""

    def __init__(self, keep_rejects: bool):
        super().__init__("score_filter", keep_rejects)
        self._cut: dict[str, Any] = {"mode": "none"}

    def process(self, record, cut):
        self._cut = cut
        yield from super().process(record)

    def decide(self, record):
        return ("ok" if cutlib.keeps(record["clip_score"], record["uid"], self._cut) else "low_score"), record


def _tied_uids(record, pre):
    if pre["k"] and record["clip_score"] == pre["value"]:
        yield record["uid"]


class ScoreFilter(beam.PTransform):
    """Scored records -> those the cut keeps (stage ``score_filter``, dropped ``low_score``).

    ``cfg.threshold``: keep clip_score >= threshold.  ``cfg.top_fraction``: keep the global
    top fraction, exactly (two global combines: all scores as float64, then the uids tied
    at the cut) or, with ``cfg.quantile = "approximate"``, by ``ApproximateQuantiles``.
    Neither: pass-through with counts.  Stats: ``score_cut`` (see :mod:`.cut`).
    """

    def __init__(self, cfg: ScoringConfig, keep_rejects: bool = False):
        super().__init__()
        self.cfg, self.keep_rejects = cfg, keep_rejects

    def _cut(self, pcoll):
        cfg = self.cfg
        p = pcoll.pipeline
        if cfg.top_fraction is None:
            fixed = ({"mode": "threshold", "value": float(cfg.threshold)} if cfg.threshold is not None
                     else {"mode": "none"})
            return p | "Cut" >> beam.Create([fixed])
        f = cfg.top_fraction
        scores = pcoll | "Scores" >> beam.Map(lambda r: r["clip_score"])
        if cfg.quantile == "approximate":
            return (scores | "Quantiles" >> beam.ApproximateQuantiles.Globally(cfg.num_quantiles)
                    | "Cut" >> beam.Map(cutlib.approximate_cut, f))
        pre = (scores | "AllScores" >> beam.CombineGlobally(_ScoreArray())
               | "PreCut" >> beam.Map(cutlib.exact_cut_from_sorted, f))
        tied = (pcoll | "Tied" >> beam.FlatMap(_tied_uids, beam.pvalue.AsSingleton(pre))
                | "TiedList" >> beam.combiners.ToList())
        return tied | "Cut" >> beam.Map(lambda uids, pre: cutlib.finish_exact_cut(pre, uids),
                                        beam.pvalue.AsSingleton(pre))

    def expand(self, pcoll):
        cut = self._cut(pcoll)
        out = (pcoll | "Decide" >> beam.ParDo(_FilterDecide(self.keep_rejects), beam.pvalue.AsSingleton(cut))
               .with_outputs(COUNTS, REJECTS, main="kept"))
        stats = cut | "Stat" >> beam.Map(lambda c: ("score_cut", {k: v for k, v in c.items() if k != "above"}))
        return {"kept": out.kept, "counts": out[COUNTS], "rejects": out[REJECTS], "stats": stats}
