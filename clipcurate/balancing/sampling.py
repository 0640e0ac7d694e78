"""MetaCLIP balancing: per-entry counts, the cap ``t``, and the seeded keep draw.

MetaCLIP keeps a pair when *any* of its matched entries ``e`` draws ``u_e < t / count_e``
(``metaclip1/balancing.py``).  Here ``u_e = seeded_uniform(seed, uid, "metaclip:<e>")``,
so the draw depends only on (seed, uid, entry id), never on order or workers, and

    P(keep) = 1 - prod_e (1 - min(1, t / count_e)).

A pair matching a *tail* entry (``count_e <= t``) is always kept.
"""
from __future__ import annotations

from typing import Iterable

import apache_beam as beam
import numpy as np

from clipcurate.schemas.uid import seeded_uniform

PURPOSE = "metaclip"


def entry_probabilities(counts: np.ndarray, t: int) -> np.ndarray:
    """``min(1, t / count)`` per entry (1.0 where count is 0), as float64."""
    if t <= 0:
        raise ValueError(f"t must be > 0, got {t}")
    counts = np.asarray(counts, dtype=np.float64)
    probs = np.ones_like(counts)
    head = counts > t
    probs[head] = t / counts[head]
    return probs


def keep_probability(matched: Iterable[int], probs: np.ndarray) -> float:
    """Exact probability that :func:`draw_keep` keeps a pair with these matched entries."""
    ids = np.fromiter(matched, dtype=np.int64)
    if ids.size == 0:
        return 0.0
    return float(1.0 - np.prod(1.0 - probs[ids]))


def draw_keep(seed: int, uid: str, matched: Iterable[int], probs: np.ndarray) -> bool:
    """MetaCLIP's draw: True if any matched entry's seeded uniform falls below its probability."""
    for e in matched:
        p = probs[e]
        if p >= 1.0 or seeded_uniform(seed, uid, f"{PURPOSE}:{e}") < p:
            return True
    return False


def head_probabilities(probs: np.ndarray) -> dict[int, float]:
    """``{entry id: p}`` for the entries with ``p < 1`` (the head): what :func:`draw_keep_head` needs."""
    head = np.flatnonzero(probs < 1.0)
    return dict(zip(head.tolist(), probs[head].tolist()))


def draw_keep_head(seed: int, uid: str, matched: Iterable[int], head: dict[int, float]) -> bool:
    """:func:`draw_keep` with the probabilities given as :func:`head_probabilities` (same result, faster:
    no numpy scalar per entry; tail entries are a dict miss)."""
    for e in matched:
        p = head.get(e)
        if p is None or seeded_uniform(seed, uid, f"{PURPOSE}:{e}") < p:
            return True
    return False


def tally(acc: dict[int, int], matched: Iterable[int]) -> None:
    """Add one match per entry id in ``matched`` to the sparse count dict ``acc``."""
    for e in matched:
        acc[e] = acc.get(e, 0) + 1


class EntryCountFn(beam.CombineFn):
    """Combine per-entry match counts into one dense ``int64`` array of length ``num_entries``.

    Inputs are either sparse partial counts ``{entry_id: n}`` (what the match and balance
    DoFns emit once per bundle, so no per-element Beam step is spent on counting) or
    plain lists of matched entry ids.  The accumulator is a sparse dict; only the final
    output is dense.
    """

    def __init__(self, num_entries: int):
        if num_entries <= 0:
            raise ValueError(f"num_entries must be > 0, got {num_entries}")
        self.num_entries = num_entries

    def create_accumulator(self) -> dict[int, int]:
        return {}

    def add_input(self, acc: dict[int, int], counts) -> dict[int, int]:
        if isinstance(counts, dict):
            for e, n in counts.items():
                acc[e] = acc.get(e, 0) + n
        else:
            tally(acc, counts)
        return acc

    def merge_accumulators(self, accs: Iterable[dict[int, int]]) -> dict[int, int]:
        accs = sorted(accs, key=len, reverse=True)
        out = accs[0] if accs else {}
        for acc in accs[1:]:
            self.add_input(out, acc)
        return out

    def extract_output(self, acc: dict[int, int]) -> np.ndarray:
        counts = np.zeros(self.num_entries, dtype=np.int64)
        if acc:
            ids = np.fromiter(acc.keys(), dtype=np.int64, count=len(acc))
            if ids.min() < 0 or ids.max() >= self.num_entries:
                raise ValueError(f"entry id out of range [0, {self.num_entries}): {int(ids.min())}..{int(ids.max())}")
            counts[ids] = np.fromiter(acc.values(), dtype=np.int64, count=len(acc))
        return counts


def head_tail_summary(before: np.ndarray, after: np.ndarray, t: int, active: np.ndarray) -> dict:
    """Head/tail numbers for the manifest: entries above t and the share of matches they hold."""
    head = before > t
    total_before, total_after = int(before.sum()), int(after.sum())
    head_before, head_after = int(before[head].sum()), int(after[head].sum())
    return {
        "t": int(t),
        "entries_matched": int((before > 0).sum()),
        "unmatched_entries": int(((before == 0) & active).sum()),
        "head_entries": int(head.sum()),
        "matches_before": total_before,
        "matches_after": total_after,
        "head_matches_before": head_before,
        "head_matches_after": head_after,
        "head_share_before": head_before / total_before if total_before else 0.0,
        "head_share_after": head_after / total_after if total_after else 0.0,
        "max_count_before": int(before.max()) if before.size else 0,
        "max_count_after": int(after.max()) if after.size else 0,
    }


# -- worldwide (MetaCLIP 2): one t per language from English's t -------------------------------

def tail_proportion(counts: np.ndarray, t: int) -> float:
    """Share of a language's matches that fall on tail entries, ``sum(c[c < t]) / sum(c)`` (MetaCLIP 2's
    ``t_to_p``: an entry counts whole, and only if its count is strictly below t); nan with no matches."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    return float(counts[counts < t].sum() / total) if total else float("nan")


def t_for_proportion(counts: np.ndarray, p: float) -> int:
    """MetaCLIP 2's ``p_to_t``: sort the counts, take the count at which the cumulative share of matches
    is closest to ``p`` (first such position on ties); at least 1.  1 when there are no matches."""
    counts = np.sort(np.asarray(counts, dtype=np.int64))
    total = int(counts.sum())
    if not total:
        return 1
    share = np.cumsum(counts) / total
    return max(1, int(counts[int(np.abs(share - p).argmin())]))


def language_thresholds(counts: np.ndarray, offsets: dict[str, tuple[int, int]], t_en: int,
                        p: float | None = None, anchor: str = "en") -> tuple[dict[str, int], float]:
    """``({lang: t_lang}, p)``: ``p`` is the tail proportion of ``anchor`` (English) at ``t_en`` unless given;
    ``anchor`` keeps ``t_en``; each other language gets :func:`t_for_proportion` of its own counts.
    If ``p`` cannot be derived (no anchor language, or no anchor match), every language uses ``t_en``."""
    if p is None and anchor in offsets:
        start, n = offsets[anchor]
        p = tail_proportion(counts[start:start + n], t_en)
    thresholds: dict[str, int] = {}
    for lang, (start, n) in offsets.items():
        if lang == anchor or p is None or p != p:  # p != p: nan
            thresholds[lang] = int(t_en)
        else:
            thresholds[lang] = t_for_proportion(counts[start:start + n], p)
    return thresholds, (None if p is None or p != p else float(p))


def worldwide_probabilities(counts: np.ndarray, offsets: dict[str, tuple[int, int]], t_en: int,
                            p: float | None = None) -> tuple[np.ndarray, dict[str, int], float | None]:
    """Per-entry keep probabilities ``min(1, t_lang / count)`` over the global id space, the t per
    language and the tail proportion used."""
    thresholds, p = language_thresholds(counts, offsets, t_en, p)
    probs = np.ones(len(counts), dtype=np.float64)
    for lang, (start, n) in offsets.items():
        probs[start:start + n] = entry_probabilities(counts[start:start + n], thresholds[lang])
    return probs, thresholds, p
