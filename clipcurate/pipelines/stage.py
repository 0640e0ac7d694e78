"""The shape every stage shares: a pure decision per record, counted by reason.

A stage's pure core returns ``(status, record)`` for each input record: ``"ok"``
keeps it, any other status (from :mod:`clipcurate.schemas.status`) drops it with that
reason.  :class:`CountingDoFn` wraps such a core for Beam.  It emits

* kept records on the main output,
* ``((stage, key), n)`` count pairs on the ``counts`` output, summed per bundle, with
  key ``"in"``, ``"kept"`` or ``"dropped:<reason>"`` so that in = kept + sum(dropped),
* dropped records tagged with stage and reason on the ``rejects`` output (only when
  ``keep_rejects`` is set; otherwise nothing is emitted there).

Counts are data (DESIGN.md): the manifest sums them from the ``counts`` output, and
Beam metrics mirror them for progress only.
"""
from __future__ import annotations

import collections
from typing import Any, Iterable

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from clipcurate.schemas.status import OK, check

COUNTS = "counts"
REJECTS = "rejects"
METRICS_NAMESPACE = "clipcurate"

Count = tuple[tuple[str, str], int]


def dropped_key(reason: str) -> str:
    return f"dropped:{reason}"


class CountingDoFn(beam.DoFn):
    """Base DoFn: subclasses implement :meth:`decide` (one record in, (status, record) out).

    ``decide`` may also be a generator of several ``(status, record)`` pairs (for
    stages that fan out); each input then counts once in ``in`` and each output once
    under its status.
    """

    def __init__(self, stage: str, keep_rejects: bool = False):
        if not stage:
            raise ValueError("stage name must be non-empty")
        self.stage = stage
        self.keep_rejects = keep_rejects
        self._counts: collections.Counter[str] = collections.Counter()

    # -- to override ---------------------------------------------------------------
    def decide(self, record: dict[str, Any]) -> tuple[str, dict[str, Any]] | Iterable[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    # -- Beam plumbing ---------------------------------------------------------------
    def start_bundle(self):
        self._counts = collections.Counter()

    def process(self, record):
        self._counts["in"] += 1
        result = self.decide(record)
        pairs = [result] if isinstance(result, tuple) else result
        for status, rec in pairs:
            yield from self._emit(status, rec)

    def _emit(self, status: str, rec: dict[str, Any]):
        if status == OK:
            self._counts["kept"] += 1
            yield rec
            return
        check(status)
        self._counts[dropped_key(status)] += 1
        if self.keep_rejects:
            yield beam.pvalue.TaggedOutput(REJECTS, dict(rec, stage=self.stage, reason=status))

    def finish_bundle(self):
        for key, n in sorted(self._counts.items()):
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{self.stage}.{key}").inc(n)
            yield beam.pvalue.TaggedOutput(
                COUNTS, WindowedValue(((self.stage, key), n), GlobalWindow().max_timestamp(), [GlobalWindow()]))
        self._counts = collections.Counter()


def apply_stage(pcoll: beam.PCollection, label: str, dofn: CountingDoFn) -> dict[str, beam.PCollection]:
    """Apply a CountingDoFn; return ``{"kept", "counts", "rejects"}`` PCollections.

    Every stage PTransform returns such a dict (the pipeline builder gathers all
    ``counts`` into the manifest, all ``rejects`` into the rejects Parquet, and any
    ``stats`` -- ``(name, json-able value)`` pairs -- into ``manifest["stats"]``).
    """
    out = pcoll | label >> beam.ParDo(dofn).with_outputs(COUNTS, REJECTS, main="kept")
    return {"kept": out.kept, "counts": out[COUNTS], "rejects": out[REJECTS]}


def count_elements(pcoll: beam.PCollection, label: str, stage: str, key: str) -> beam.PCollection:
    """Counts of a PCollection as ``((stage, key), n)`` pairs (for stages that are not 1:1)."""
    return (pcoll
            | f"{label}/One" >> beam.Map(lambda _: ((stage, key), 1))
            | f"{label}/Sum" >> beam.CombinePerKey(sum))
