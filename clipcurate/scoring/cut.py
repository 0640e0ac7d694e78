"""The score cut: which rows a threshold or a global top fraction keeps (pure, no Beam).

A cut is a plain dict written to ``manifest["stats"]["score_cut"]``:

* ``{"mode": "none"}`` keeps everything;
* ``{"mode": "threshold", "value": t}`` keeps ``clip_score >= t``;
* ``{"mode": "top_fraction", "method": "exact", "fraction": f, "n": n, "k": k,
  "value": s_k, "uid": u_k}`` keeps exactly the ``k = floor(f * n + 0.5)`` best rows,
  best meaning higher score, then smaller uid (ties are decided by uid, so the cut does
  not depend on order or worker count); ``(value, uid)`` is the last row kept;
* ``{"mode": "top_fraction", "method": "approximate", "fraction": f, "value": q}`` keeps
  ``clip_score >= q`` where q is the (1 - f) quantile of a Beam quantile sketch.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np


def top_k_count(n: int, fraction: float) -> int:
    """Rows kept by a top fraction: round(fraction * n), halves up, within [0, n]."""
    return max(0, min(n, int(math.floor(fraction * n + 0.5))))


def exact_cut_from_sorted(scores_desc: np.ndarray, fraction: float) -> dict[str, Any]:
    """First half of the exact cut from all scores sorted descending: n, k, the k-th score
    ``value`` and ``above`` = how many scores are strictly greater (the rest of the k rows
    are ties at ``value``, decided by uid in :func:`finish_exact_cut`)."""
    n = int(scores_desc.shape[0])
    k = top_k_count(n, fraction)
    cut = {"mode": "top_fraction", "method": "exact", "fraction": fraction, "n": n, "k": k,
           "value": None, "uid": None, "above": 0}
    if k:
        value = float(scores_desc[k - 1])
        cut.update(value=value, above=int(np.count_nonzero(scores_desc > value)))
    return cut


def finish_exact_cut(pre: dict[str, Any], tied_uids: Iterable[str]) -> dict[str, Any]:
    """Second half: among rows scoring exactly ``pre["value"]`` keep the smallest uids."""
    cut = dict(pre)
    if cut["k"]:
        tied = sorted(tied_uids)
        cut["uid"] = tied[cut["k"] - cut["above"] - 1]
    return cut


def exact_top_cut(pairs: Iterable[tuple[float, str]], fraction: float) -> dict[str, Any]:
    """The exact top-fraction cut of ``(score, uid)`` pairs in one process (reference)."""
    pairs = list(pairs)
    pre = exact_cut_from_sorted(np.sort(np.array([s for s, _ in pairs], dtype=np.float64))[::-1], fraction)
    return finish_exact_cut(pre, [u for s, u in pairs if pre["k"] and s == pre["value"]])


def approximate_cut(quantiles: Sequence[float], fraction: float) -> dict[str, Any]:
    """Cut from ``ApproximateQuantiles`` output (ascending, min..max, evenly spaced ranks)."""
    cut = {"mode": "top_fraction", "method": "approximate", "fraction": fraction,
           "num_quantiles": len(quantiles), "value": None}
    if quantiles:
        idx = int(round((1.0 - fraction) * (len(quantiles) - 1)))
        cut["value"] = float(quantiles[idx])
    return cut


def keeps(score: float, uid: str, cut: dict[str, Any]) -> bool:
    """Does ``cut`` keep a row with this score and uid?"""
    mode = cut["mode"]
    if mode == "none":
        return True
    if cut["value"] is None:  # empty input or k == 0
        return False
    if mode == "threshold" or cut.get("method") == "approximate":
        return score >= cut["value"]
    return score > cut["value"] or (score == cut["value"] and uid <= cut["uid"])
