"""MetaCLIP curation as one Beam transform: match -> count per entry -> balance.

:class:`MetaClipCurate` takes candidate records (dicts with ``uid`` and ``caption``)
and returns ``{"kept", "counts", "rejects", "stats"}``:

* ``kept``: balanced records, each with ``record["matched"]`` = sorted entry ids;
* ``counts``: ``((stage, key), n)`` for stages ``"match"`` (dropped: ``missing_caption``,
  ``no_match``) and ``"balance"`` (dropped: ``balanced_out``, ``malformed_row`` for a
  record without uid);
* ``rejects``: dropped records with ``stage``/``reason`` (only with ``keep_rejects``);
* ``stats``: one ``("metaclip", {...})`` pair (metadata path and sha256, entry numbers,
  t, seed, head/tail summary); with ``stats_dir`` also
  ``{stats_dir}/metaclip_entry_counts.parquet`` (entry_id, entry, count_before, count_after).

Cost: the Aho-Corasick automaton is built once per worker process (``Shared``); both
DoFns decide records in batches of ``BATCH_SIZE`` (:class:`BatchCountingDoFn`) and the
matched records cross the fusion break before balancing as lists, one element per
batch; the match DoFn sums the matched entries of what it keeps per bundle into a
sparse dict, merged by one ``CombineGlobally`` into a dense count array (no
per-element counting step), and the balance DoFn sums those of what it drops (few), so
counts after = counts before - dropped; the per-entry keep probabilities reach the
sampler as one singleton side input (a float64 numpy array, 8 bytes per entry).

Worldwide metadata (JSON object language -> entries): the match DoFn routes each record
by its ``language`` (:class:`~clipcurate.balancing.worldwide.Router`; no list: dropped as
``no_metadata_language``) and matches it against that language's automaton only, built
lazily in each worker process on the first caption of the language.  Entry ids are
global (languages sorted), so the same single combine gives counts per (language, entry);
probabilities use ``t_lang`` per language (:func:`~clipcurate.balancing.sampling.worldwide_probabilities`),
and ``stats`` gains ``languages``: per language t, head/tail summary, record funnel,
top entries and a sorted entry-count curve (for a per-language plot).
"""
from __future__ import annotations

import bisect
import collections
import hashlib
import itertools
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.shared import Shared
from apache_beam.utils.windowed_value import WindowedValue

from clipcurate.balancing.config import BalanceConfig
from clipcurate.balancing.entries import (Metadata, MetadataError, load_metadata, parse_entries, parse_metadata,
                                          read_bytes)
from clipcurate.balancing.matching import Matcher, WorldwideMatcher, active_entries
from clipcurate.balancing.sampling import (EntryCountFn, draw_keep_head, entry_probabilities, head_probabilities,
                                           head_tail_summary, tail_proportion, worldwide_probabilities)
from clipcurate.balancing.worldwide import Router, parse_lang_map
from clipcurate.pipelines.stage import COUNTS, REJECTS, BatchCountingDoFn, count_elements, in_global_window

ENTRY_COUNTS_FILE = "metaclip_entry_counts.parquet"
STATS_NAME = "metaclip"
ENTRY_COUNTS = "entry_counts"  # tagged output: one sparse {entry_id: n} per bundle
LANG_COUNTS = "lang_counts"  # worldwide: one {"<lang>\t<stage>:<status>": n} per bundle
NO_LANGUAGE = "-"  # funnel key of records routed to no metadata language
BATCH_SIZE = 256  # records matched together; outputs and counts do not depend on it


def load_checked(path: str, sha256: str) -> Metadata:
    """Load the metadata file and fail clearly if it changed since the pipeline was built."""
    md = load_metadata(path)
    if md.sha256 != sha256:
        raise MetadataError(f"metadata file {path} changed during the run: sha256 {md.sha256} != {sha256}")
    return md


def load_value_checked(path: str, sha256: str) -> list[str] | dict[str, list[str]]:
    """Like :func:`load_entries_checked`, but a worldwide file stays a dict language -> entries."""
    data = read_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise MetadataError(f"metadata file {path} changed during the run: sha256 {digest} != {sha256}")
    return parse_metadata(data, path)


def load_entries_checked(path: str, sha256: str) -> list[str]:
    """The entries of the metadata file, failing clearly if it changed since the pipeline was built.

    What workers need: unlike :func:`load_checked` it skips the summary counts (blank,
    duplicate, unmatchable entries), which were computed and checked at construction.
    """
    data = read_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise MetadataError(f"metadata file {path} changed during the run: sha256 {digest} != {sha256}")
    return parse_entries(data, path)


class _SharedMatcher:
    """Weak-referenceable holder for one process-wide :class:`Matcher`."""

    def __init__(self, path: str, sha256: str, worldwide: bool = False):
        if worldwide:  # per-language automata are built lazily, on first use
            self.matcher = WorldwideMatcher(load_value_checked(path, sha256))
        else:
            self.matcher = Matcher(load_entries_checked(path, sha256))


class _TallyingDoFn(BatchCountingDoFn):
    """BatchCountingDoFn that also sums the matched entry ids of some records per bundle (``ENTRY_COUNTS``
    output, one sparse ``{entry_id: n}``): of the records it keeps (``TALLY_KEPT``) or of those it drops."""

    TALLY_KEPT = True

    def start_bundle(self):
        super().start_bundle()
        self._tally: collections.Counter[int] = collections.Counter()
        self._lang_tally: collections.Counter[str] = collections.Counter()

    def keep(self, record: dict[str, Any]):
        return "ok", record

    def decide_batch(self, records, **side):
        decisions = super().decide_batch(records, **side)
        want = self.TALLY_KEPT
        self._tally.update(itertools.chain.from_iterable(
            rec.get("matched") or () for status, rec in decisions if (status == "ok") is want))
        return decisions

    def finish_bundle(self):
        yield from super().finish_bundle()
        if self._tally:
            yield beam.pvalue.TaggedOutput(
                ENTRY_COUNTS, WindowedValue(dict(self._tally), GlobalWindow().max_timestamp(), [GlobalWindow()]))
        if self._lang_tally:
            yield beam.pvalue.TaggedOutput(
                LANG_COUNTS, WindowedValue(dict(self._lang_tally), GlobalWindow().max_timestamp(), [GlobalWindow()]))
        self._tally = collections.Counter()
        self._lang_tally = collections.Counter()


class _MatchDoFn(_TallyingDoFn):
    """Set ``matched``; drop records without caption, and (if asked) records matching nothing.

    Kept records leave as lists (one per decided batch) for :class:`_BalanceDoFn`: the
    fusion break between the two (balancing waits for the global counts) then encodes
    one element per batch instead of one per record.
    """

    def __init__(self, shared: Shared, path: str, sha256: str, drop_unmatched: bool, keep_rejects: bool,
                 batch_size: int = BATCH_SIZE, router: Router | None = None):
        super().__init__("match", keep_rejects, batch_size=batch_size, emit_lists=True)
        self._shared, self._path, self._sha256 = shared, path, sha256
        self._drop_unmatched = drop_unmatched
        self._router = router
        self._holder = None

    def setup(self):
        worldwide = self._router is not None
        self._holder = self._shared.acquire(lambda: _SharedMatcher(self._path, self._sha256, worldwide),
                                            tag=f"metaclip-matcher:{self._sha256}")

    def decide(self, record: dict[str, Any]):
        if self._router is not None:
            return self._decide_worldwide(record)
        caption = record.get("caption")
        if not isinstance(caption, str) or not caption.strip():
            return "missing_caption", record
        rec = dict(record, matched=self._holder.matcher.match(caption))
        if not rec["matched"] and self._drop_unmatched:
            return "no_match", rec
        return self.keep(rec)

    def _decide_worldwide(self, record: dict[str, Any]):
        lang = self._router.route(record.get("language"))
        status, rec = self._route_and_match(record, lang)
        self._lang_tally[f"{lang or NO_LANGUAGE}\tmatch:{status}"] += 1
        return status, rec

    def _route_and_match(self, record: dict[str, Any], lang: str | None):
        caption = record.get("caption")
        if not isinstance(caption, str) or not caption.strip():
            return "missing_caption", record
        if lang is None:
            return "no_metadata_language", record
        rec = dict(record, matched=self._holder.matcher.match(caption, lang))
        if not rec["matched"] and self._drop_unmatched:
            return "no_match", rec
        return self.keep(rec)


class _BalanceDoFn(_TallyingDoFn):
    """Keep a record with MetaCLIP's seeded draw; the side input is the per-entry probability array.

    Input elements are lists of records (from :class:`_MatchDoFn`); outputs are records.  It tallies
    the entries of the records it *drops* (few): counts after = counts before - those.
    """

    TALLY_KEPT = False

    def __init__(self, seed: int, keep_rejects: bool, starts: list[int] | None = None,
                 langs: list[str] | None = None):
        super().__init__("balance", keep_rejects, input_lists=True)
        self._seed = seed
        self._probs: np.ndarray | None = None
        self._head: dict[int, float] = {}
        self._starts, self._langs = starts, langs  # worldwide: first global id of each language, sorted

    def decide_batch(self, records, **side):
        decisions = super().decide_batch(records, **side)
        if self._starts is not None:
            for status, rec in decisions:
                matched = rec.get("matched")
                lang = self._langs[bisect.bisect_right(self._starts, matched[0]) - 1] if matched else NO_LANGUAGE
                self._lang_tally[f"{lang}\tbalance:{status}"] += 1
        return decisions

    def decide(self, record: dict[str, Any], probs: np.ndarray):
        uid = record.get("uid")
        if not isinstance(uid, str) or not uid:
            return "malformed_row", record
        matched = record.get("matched") or []
        if probs is not self._probs:  # the side input: once per bundle at most
            self._probs, self._head = probs, head_probabilities(probs)
        if not matched or draw_keep_head(self._seed, uid, matched, self._head):
            return self.keep(record)
        return "balanced_out", record


class MetaClipCurate(beam.PTransform):
    """Match captions against MetaCLIP metadata, count matches per entry globally, cap each entry at t.

    In: candidate records (dicts with ``uid``, ``caption``).  Out: ``{"kept", "counts",
    "rejects", "stats"}`` (see module docstring).  The metadata file is read and checked
    here (``MetadataError`` names the file) and again on each worker, where a changed
    sha256 is an error.  ``cfg.enabled`` False or ``cfg.metadata`` None: pass-through,
    with in/kept counts for both stages.
    """

    def __init__(self, cfg: BalanceConfig, seed: int, keep_rejects: bool = False,
                 stats_dir: str | None = None):
        super().__init__()
        if cfg.t <= 0:
            raise ValueError(f"balance.t must be > 0, got {cfg.t}")
        self.cfg, self.seed, self.keep_rejects, self.stats_dir = cfg, int(seed), keep_rejects, stats_dir
        self.active = bool(cfg.enabled and cfg.metadata)
        self.summary: dict[str, Any] = {}
        self.router: Router | None = None
        self.offsets: dict[str, tuple[int, int]] = {}
        if self.active:
            md = load_metadata(cfg.metadata)
            self.num_entries, self.sha256 = len(md.entries), md.sha256
            self.summary = md.summary()
            if md.worldwide:
                self.router = Router(md.languages, cfg.unknown_language, parse_lang_map(cfg.lang_map))
                self.offsets = md.offsets()
                self.summary.update(t_en=cfg.t, tail_proportion_config=cfg.tail_proportion,
                                    unknown_language=cfg.unknown_language, lang_map=sorted(self.router.map.items()))
        if cfg.tail_proportion is not None and not 0.0 < cfg.tail_proportion <= 1.0:
            raise ValueError(f"balance.tail_proportion={cfg.tail_proportion}: expected a number in (0, 1]")
        self._shared = Shared()

    def expand(self, pcoll):
        if not self.active:
            return self._pass_through(pcoll)
        if self.router is not None:
            return self._expand_worldwide(pcoll)
        match = _MatchDoFn(self._shared, self.cfg.metadata, self.sha256, self.cfg.drop_unmatched, self.keep_rejects,
                           batch_size=BATCH_SIZE if in_global_window(pcoll) else 1)
        m = pcoll | "Match" >> beam.ParDo(match).with_outputs(COUNTS, REJECTS, ENTRY_COUNTS, main="kept")
        before = m[ENTRY_COUNTS] | "CountBefore" >> beam.CombineGlobally(EntryCountFn(self.num_entries))
        probs = before | "Probabilities" >> beam.Map(entry_probabilities, self.cfg.t)
        b = (m.kept | "Balance" >> beam.ParDo(_BalanceDoFn(self.seed, self.keep_rejects),
                                               probs=beam.pvalue.AsSingleton(probs))
             .with_outputs(COUNTS, REJECTS, ENTRY_COUNTS, main="kept"))
        dropped = b[ENTRY_COUNTS] | "CountDropped" >> beam.CombineGlobally(EntryCountFn(self.num_entries))
        after = dropped | "CountAfter" >> beam.Map(_minus,
                                                   before=beam.pvalue.AsSingleton(before))
        stats = before | "Stats" >> beam.Map(
            _make_stats, after=beam.pvalue.AsSingleton(after), path=self.cfg.metadata, sha256=self.sha256,
            extra=dict(self.summary, seed=self.seed, drop_unmatched=self.cfg.drop_unmatched),
            t=self.cfg.t, stats_dir=self.stats_dir)
        return {"kept": b.kept,
                "counts": (m[COUNTS], b[COUNTS]) | "FlattenCounts" >> beam.Flatten(),
                "rejects": (m[REJECTS], b[REJECTS]) | "FlattenRejects" >> beam.Flatten(),
                "stats": stats}

    def _expand_worldwide(self, pcoll):
        outs = (COUNTS, REJECTS, ENTRY_COUNTS, LANG_COUNTS)
        match = _MatchDoFn(self._shared, self.cfg.metadata, self.sha256, self.cfg.drop_unmatched, self.keep_rejects,
                           batch_size=BATCH_SIZE if in_global_window(pcoll) else 1, router=self.router)
        m = pcoll | "Match" >> beam.ParDo(match).with_outputs(*outs, main="kept")
        before = m[ENTRY_COUNTS] | "CountBefore" >> beam.CombineGlobally(EntryCountFn(self.num_entries))
        world = before | "LanguageThresholds" >> beam.Map(worldwide_probabilities, self.offsets, self.cfg.t,
                                                           self.cfg.tail_proportion)
        probs = world | "Probabilities" >> beam.Map(lambda w: w[0])
        langs = sorted(self.offsets)
        b = (m.kept | "Balance" >> beam.ParDo(
                _BalanceDoFn(self.seed, self.keep_rejects, [self.offsets[lang][0] for lang in langs], langs),
                probs=beam.pvalue.AsSingleton(probs))
             .with_outputs(*outs, main="kept"))
        dropped = b[ENTRY_COUNTS] | "CountDropped" >> beam.CombineGlobally(EntryCountFn(self.num_entries))
        after = dropped | "CountAfter" >> beam.Map(_minus, before=beam.pvalue.AsSingleton(before))
        funnel = ((m[LANG_COUNTS], b[LANG_COUNTS]) | "FlattenLangCounts" >> beam.Flatten()
                  | "CountLanguages" >> beam.CombineGlobally(_SumCountsFn()))
        stats = before | "Stats" >> beam.Map(
            _make_stats, after=beam.pvalue.AsSingleton(after), path=self.cfg.metadata, sha256=self.sha256,
            extra=dict(self.summary, seed=self.seed, drop_unmatched=self.cfg.drop_unmatched),
            t=self.cfg.t, stats_dir=self.stats_dir, world=beam.pvalue.AsSingleton(world),
            funnel=beam.pvalue.AsSingleton(funnel), offsets=self.offsets)
        return {"kept": b.kept,
                "counts": (m[COUNTS], b[COUNTS]) | "FlattenCounts" >> beam.Flatten(),
                "rejects": (m[REJECTS], b[REJECTS]) | "FlattenRejects" >> beam.Flatten(),
                "stats": stats}

    def _pass_through(self, pcoll):
        counts = [count_elements(pcoll, f"Count{stage.title()}{key.title()}", stage, key)
                  for stage in ("match", "balance") for key in ("in", "kept")]
        p = pcoll.pipeline
        return {"kept": pcoll,
                "counts": counts | "FlattenCounts" >> beam.Flatten(),
                "rejects": p | "NoRejects" >> beam.Create([]),
                "stats": p | "Stats" >> beam.Create([(STATS_NAME, {"enabled": False, "metadata": self.cfg.metadata})])}

class _SumCountsFn(beam.CombineFn):
    """Sum ``{key: n}`` dicts into one dict (the per-language record funnel)."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, counts):
        for k, n in counts.items():
            acc[k] = acc.get(k, 0) + n
        return acc

    def merge_accumulators(self, accs):
        out: dict = {}
        for acc in accs:
            self.add_input(out, acc)
        return out

    def extract_output(self, acc):
        return dict(sorted(acc.items()))


def _minus(dropped: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Per-entry counts after balancing: before minus the entries of the records balancing dropped."""
    return before - dropped


def _make_stats(before: np.ndarray, after: np.ndarray, path: str, sha256: str, extra: dict, t: int,
                stats_dir: str | None, world=None, funnel: dict | None = None,
                offsets: dict[str, tuple[int, int]] | None = None) -> tuple[str, dict]:
    """The ``("metaclip", {...})`` stats pair; writes the per-entry Parquet when ``stats_dir`` is set."""
    entries = load_entries_checked(path, sha256)
    active = np.zeros(len(entries), dtype=bool)
    if offsets:
        for start, n in offsets.values():  # duplicates are per language
            active[[start + i for i in active_entries(entries[start:start + n]).values()]] = True
    else:
        active[list(active_entries(entries).values())] = True
    stats = dict(extra, **head_tail_summary(before, after, t, active))
    stats["top_entries"] = [{"entry": entries[i], "count_before": int(before[i]), "count_after": int(after[i])}
                            for i in np.argsort(-before, kind="stable")[:20]]
    language_of = None
    if offsets:
        _, thresholds, p = world
        stats["tail_proportion"] = p
        stats["languages"] = language_stats(entries, before, after, active, offsets, thresholds, funnel or {})
        language_of = np.empty(len(entries), dtype=object)
        for lang, (start, n) in offsets.items():
            language_of[start:start + n] = lang
    if stats_dir:
        stats["entry_counts_parquet"] = write_entry_counts(stats_dir, entries, before, after, language_of)
    return STATS_NAME, stats


CURVE_POINTS = 32  # points of the per-language sorted entry-count curve in the stats


def language_stats(entries: list[str], before: np.ndarray, after: np.ndarray, active: np.ndarray,
                   offsets: dict[str, tuple[int, int]], thresholds: dict[str, int], funnel: dict) -> dict:
    """Per metadata language: t, head/tail summary (``head_entries``: entries over t; ``tail_share``: share of
    the language's matches on entries with a count below t, the proportion t_lang aims at), record funnel,
    top entries, entry-count curve."""
    by_lang: dict[str, dict] = {}
    for key, n in funnel.items():
        lang, what = key.split("\t", 1)
        by_lang.setdefault(lang, {}).setdefault("funnel", {})[what] = n
    for lang, (start, n) in offsets.items():
        b, a = before[start:start + n], after[start:start + n]
        out = by_lang.setdefault(lang, {})
        out.update(entries=n, **head_tail_summary(b, a, thresholds[lang], active[start:start + n]))
        tail = tail_proportion(b, thresholds[lang])  # MetaCLIP 2's t_to_p at t_lang: sum(c[c < t]) / sum(c)
        out["tail_share"] = None if tail != tail else tail
        out["top_entries"] = [{"entry": entries[start + i], "count_before": int(b[i]), "count_after": int(a[i])}
                              for i in np.argsort(-b, kind="stable")[:5] if b[i] > 0]
        matched = np.sort(b[b > 0])[::-1]
        if matched.size:
            idx = np.unique(np.linspace(0, matched.size - 1, min(CURVE_POINTS, matched.size)).round().astype(int))
            out["count_curve"] = {"rank": (idx + 1).tolist(), "count": matched[idx].tolist()}
    return dict(sorted(by_lang.items()))


def write_entry_counts(stats_dir: str, entries: list[str], before: np.ndarray, after: np.ndarray,
                       language_of: np.ndarray | None = None) -> str:
    """Write ``{stats_dir}/metaclip_entry_counts.parquet`` atomically (temp name, then rename); return its path."""
    import pyarrow as pa
    from apache_beam.io.filesystems import FileSystems

    from clipcurate.sinks.files import write_parquet_atomic

    columns = {"entry_id": pa.array(np.arange(len(entries)), pa.int32()),
               "entry": pa.array(entries, pa.string()),
               "count_before": pa.array(before, pa.int64()),
               "count_after": pa.array(after, pa.int64())}
    if language_of is not None:
        columns["language"] = pa.array(language_of.tolist(), pa.string())
    table = pa.table(columns)
    final = FileSystems.join(stats_dir, ENTRY_COUNTS_FILE)
    write_parquet_atomic(final, table)
    return final
