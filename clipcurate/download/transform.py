"""``Download``: the Beam stage that fetches candidate records and checks their images.

Input: candidate records (dicts with uid, url, caption, ...).  Output dict:

* ``kept``: records with status "ok" and image (bytes, re-encoded per config), sha256,
  width, height, original_width, original_height, image_format, http_status;
* ``counts``: ``(("download", key), n)`` with in = kept + sum(dropped:<status>);
* ``rejects``: failed rows (status, error, http_status, stage, reason; no image), when
  ``keep_rejects``;
* ``stats``: one ``("download", {...})`` pair: requests, retries, robots fetches, bytes on
  the wire, cache hits, max seconds of any request, max event-loop lag, wall-clock
  time of the first submitted and last finished sample.

Each worker keeps up to ``cfg.batch_size`` records in flight on one asyncio loop (a
:class:`~.runner.DownloadRunner` made in ``setup``); results are emitted as they
complete and the rest in ``finish_bundle``.  A record's output depends only on its
fetch outcome, never on concurrency or bundle boundaries.
"""
from __future__ import annotations

import collections
import concurrent.futures
from typing import Any

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from clipcurate.download.config import DownloadConfig
from clipcurate.download.runner import DownloadRunner
from clipcurate.pipelines.stage import COUNTS, REJECTS, CountingDoFn

STAGE = "download"
STATS = "stats"


def _windowed(value: Any) -> WindowedValue:
    return WindowedValue(value, GlobalWindow().max_timestamp(), [GlobalWindow()])


class _DownloadDoFn(CountingDoFn):
    """CountingDoFn whose decisions arrive asynchronously from a DownloadRunner."""

    def __init__(self, cfg: DownloadConfig, keep_rejects: bool):
        super().__init__(STAGE, keep_rejects)
        self.cfg = cfg
        self._runner: DownloadRunner | None = None
        self._pending: set = set()

    def setup(self):
        self._runner = DownloadRunner(self.cfg)

    def start_bundle(self):
        super().start_bundle()
        self._pending = set()
        self._stats0 = self._runner.stats()

    def process(self, record):
        self._counts["in"] += 1
        self._pending.add(self._runner.submit(record))
        if len(self._pending) >= self.cfg.batch_size:
            done, self._pending = concurrent.futures.wait(
                self._pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for fut in done:
                yield from self._emit(*fut.result())

    def finish_bundle(self):
        done, _ = concurrent.futures.wait(self._pending)
        self._pending = set()
        for fut in done:
            for out in self._emit(*fut.result()):
                if isinstance(out, beam.pvalue.TaggedOutput):
                    yield beam.pvalue.TaggedOutput(out.tag, _windowed(out.value))
                else:
                    yield _windowed(out)
        yield beam.pvalue.TaggedOutput(STATS, _windowed((STAGE, self._stats_delta())))
        yield from super().finish_bundle()

    def _stats_delta(self) -> dict[str, float]:
        now = self._runner.stats()
        out = {k: v - self._stats0.get(k, 0) for k, v in now.items() if not k.startswith(_EXTREMES)}
        out.update({k: v for k, v in now.items() if k.startswith(_EXTREMES)})
        return out

    def teardown(self):
        if self._runner is not None:
            self._runner.close()
            self._runner = None


_EXTREMES = ("max_", "min_")


def merge_stats(dicts) -> dict[str, float]:
    """Sum counters, take the max of ``max_*`` keys and the min of ``min_*`` keys."""
    out: collections.Counter = collections.Counter()
    extremes: dict[str, float] = {}
    for d in dicts:
        for k, v in d.items():
            if k.startswith("max_"):
                extremes[k] = max(extremes.get(k, v), v)
            elif k.startswith("min_"):
                extremes[k] = min(extremes.get(k, v), v)
            else:
                out[k] += v
    return dict(sorted(out.items())) | dict(sorted(extremes.items()))


class Download(beam.PTransform):
    """Fetch and check images of candidate records; see the module doc for the outputs."""

    def __init__(self, cfg: DownloadConfig, keep_rejects: bool = True):
        super().__init__()
        if not isinstance(cfg, DownloadConfig):
            raise TypeError(f"Download needs a DownloadConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.keep_rejects = keep_rejects

    def expand(self, pcoll):
        out = pcoll | "Fetch" >> beam.ParDo(_DownloadDoFn(self.cfg, self.keep_rejects)).with_outputs(
            COUNTS, REJECTS, STATS, main="kept")
        stats = (out[STATS]
                 | "StatsPerKey" >> beam.CombinePerKey(merge_stats))
        return {"kept": out.kept, "counts": out[COUNTS], "rejects": out[REJECTS], "stats": stats}
