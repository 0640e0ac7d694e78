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
Beam metrics mirror them for progress only; so does the local progress view
(:mod:`clipcurate.pipelines.progress`), which reads running counts from a side channel.

:class:`BatchCountingDoFn` is the same contract for cores that are cheaper per batch
(``decide_batch(records) -> [(status, record), ...]``, 1:1): it buffers records and decides
them ``batch_size`` at a time, with the same outputs and counts as one at a time.
"""
from __future__ import annotations

import collections
from typing import Any, Iterable

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow, GlobalWindows
from apache_beam.utils.windowed_value import WindowedValue

from clipcurate.pipelines.progress import bundle_progress
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
        self._progress = None

    # -- to override ---------------------------------------------------------------
    def decide(self, record: dict[str, Any]) -> tuple[str, dict[str, Any]] | Iterable[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    # -- Beam plumbing ---------------------------------------------------------------
    def start_bundle(self):
        self._counts = collections.Counter()
        self._progress = bundle_progress(self.stage)  # None unless a local progress view listens

    def process(self, record):
        self._counts["in"] += 1
        result = self.decide(record)
        pairs = [result] if isinstance(result, tuple) else result
        for status, rec in pairs:
            yield from self._emit(status, rec)

    def _emit(self, status: str, rec: dict[str, Any]):
        if self._progress is not None:
            self._progress.tick(self._counts)
        if status == OK:
            self._counts["kept"] += 1
            yield rec
            return
        check(status)
        self._counts[dropped_key(status)] += 1
        if self.keep_rejects:
            yield beam.pvalue.TaggedOutput(REJECTS, dict(rec, stage=self.stage, reason=status))

    def finish_bundle(self):
        if getattr(self, "_progress", None) is not None:
            self._progress.finish(self._counts)
            self._progress = None
        for key, n in sorted(self._counts.items()):
            beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{self.stage}.{key}").inc(n)
            yield beam.pvalue.TaggedOutput(
                COUNTS, WindowedValue(((self.stage, key), n), GlobalWindow().max_timestamp(), [GlobalWindow()]))
        self._counts = collections.Counter()


def _end_of_global_window(value) -> WindowedValue:
    return WindowedValue(value, GlobalWindow().max_timestamp(), [GlobalWindow()])


class BatchCountingDoFn(CountingDoFn):
    """A CountingDoFn that decides records ``batch_size`` at a time: subclasses implement
    :meth:`decide_batch` (a list of records in, one ``(status, record)`` per record out, same
    order).  Same outputs and counts as deciding one record at a time; what it saves is
    per-record bookkeeping, and a heavy model or automaton stays hot in cache for a batch.

    Records are buffered in ``process`` and decided when the buffer is full and at the end
    of the bundle, so outputs leave in batches.  That is only right in the global window
    (batch pipelines): :func:`apply_stage` sets ``batch_size = 1`` (decide at once, outputs
    keep their element's window and timestamp) for any other windowing.  Side inputs
    (keyword arguments of ``process``) must be the same for the whole bundle.

    ``input_lists``: each input element is already a list of records (decided at once).
    ``emit_lists``: the kept records of each decided batch leave as one list element
    (for a consumer with ``input_lists``; cheaper to encode across a fusion break).
    """

    def __init__(self, stage: str, keep_rejects: bool = False, batch_size: int = 256,
                 input_lists: bool = False, emit_lists: bool = False):
        super().__init__(stage, keep_rejects)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.batch_size, self.input_lists, self.emit_lists = batch_size, input_lists, emit_lists
        self._batch: list = []
        self._side: dict = {}

    # -- to override ---------------------------------------------------------------
    def decide_batch(self, records: list[dict[str, Any]], **side) -> list[tuple[str, dict[str, Any]]]:
        """One ``(status, record)`` per input record, in order (default: :meth:`decide` on each)."""
        return [self.decide(r, **side) for r in records]

    # -- Beam plumbing ---------------------------------------------------------------
    def start_bundle(self):
        super().start_bundle()
        self._batch = []

    def process(self, element, **side):
        if self.input_lists:
            return self._decide(element, side) if element else ()
        batch = self._batch
        batch.append(element)
        if len(batch) >= self.batch_size:
            self._batch = []
            return self._decide(batch, side)
        self._side = side
        return ()

    def _decide(self, records: list, side: dict) -> list:
        """Decide ``records``; count them; return the outputs (kept, then tagged rejects)."""
        decisions = self.decide_batch(records, **side)
        if len(decisions) != len(records):
            raise RuntimeError(f"{type(self).__name__}.decide_batch returned {len(decisions)} decisions "
                               f"for {len(records)} records")
        self._counts["in"] += len(records)
        if self._progress is not None:
            self._progress.tick(self._counts)
        kept = [rec for status, rec in decisions if status == OK]
        dropped = [] if len(kept) == len(decisions) else [
            out for status, rec in decisions if status != OK for out in self._emit(status, rec)]
        if not kept:
            return dropped
        self._counts["kept"] += len(kept)
        return ([kept] if self.emit_lists else kept) + dropped

    def finish_bundle(self):
        batch, self._batch = self._batch, []
        if batch:
            for value in self._decide(batch, self._side):
                if isinstance(value, beam.pvalue.TaggedOutput):
                    yield beam.pvalue.TaggedOutput(value.tag, _end_of_global_window(value.value))
                else:
                    yield _end_of_global_window(value)
        self._side = {}
        yield from super().finish_bundle()


def apply_stage(pcoll: beam.PCollection, label: str, dofn: CountingDoFn) -> dict[str, beam.PCollection]:
    """Apply a CountingDoFn; return ``{"kept", "counts", "rejects"}`` PCollections.

    Every stage PTransform returns such a dict (the pipeline builder gathers all
    ``counts`` into the manifest, all ``rejects`` into the rejects Parquet, and any
    ``stats`` -- ``(name, json-able value)`` pairs -- into ``manifest["stats"]``).
    A :class:`BatchCountingDoFn` decides one record at a time unless ``pcoll`` is in the
    global window.
    """
    if isinstance(dofn, BatchCountingDoFn) and not in_global_window(pcoll):
        dofn.batch_size = 1
    out = pcoll | label >> beam.ParDo(dofn).with_outputs(COUNTS, REJECTS, main="kept")
    return {"kept": out.kept, "counts": out[COUNTS], "rejects": out[REJECTS]}


def in_global_window(pcoll: beam.PCollection) -> bool:
    """True when ``pcoll`` uses the global window (every batch pipeline unless it re-windows)."""
    return isinstance(pcoll.windowing.windowfn, GlobalWindows)


def count_elements(pcoll: beam.PCollection, label: str, stage: str, key: str) -> beam.PCollection:
    """Counts of a PCollection as ``((stage, key), n)`` pairs (for stages that are not 1:1)."""
    return (pcoll
            | f"{label}/One" >> beam.Map(lambda _: ((stage, key), 1))
            | f"{label}/Sum" >> beam.CombinePerKey(sum))
