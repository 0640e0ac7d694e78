"""Report parts for worldwide (MetaCLIP 2) runs: head/tail summary and entry counts per language.

In: the run's manifest (``stats.metaclip.languages``: per metadata language ``t``, ``entries``,
``head_entries``, ``tail_share``, ``count_curve``, ...) and, when present, the rows of
``stats/metaclip_entry_counts.parquet`` (with its ``language`` column).  Out: an HTML table
(:func:`head_tail_table`) and a plot of the sorted per-entry counts of each language with its
t_lang (:func:`plot_entry_counts_per_language`).  Both are empty for a one-list run.
"""
from __future__ import annotations

import html
from typing import Any

import matplotlib
import numpy as np

MAX_LANGUAGES = 12  # languages drawn in the plot (most matches first)


def metaclip_languages(manifest: dict[str, Any]) -> dict[str, dict]:
    """``stats.metaclip.languages`` of a worldwide run: metadata languages with a t (``{}`` otherwise)."""
    langs = (((manifest.get("stats") or {}).get("metaclip") or {}).get("languages")) or {}
    return {lang: v for lang, v in langs.items() if isinstance(v, dict) and "t" in v}


def language_head_tail(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metadata language, most matches first (then by code): t_lang, entries, entries
    matched, entries over t, matches before/after balancing, share of matches in the tail."""
    rows = []
    for lang, s in metaclip_languages(manifest).items():
        rows.append({"language": lang, "t": s["t"], "entries": s.get("entries", 0),
                     "entries_matched": s.get("entries_matched", 0), "entries_over_t": s.get("head_entries", 0),
                     "matches_before": s.get("matches_before", 0), "matches_after": s.get("matches_after", 0),
                     "tail_share": s.get("tail_share")})
    rows.sort(key=lambda r: (-r["matches_before"], r["language"]))
    return rows


def _e(x: Any) -> str:
    return html.escape(str(x))


def _share(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def head_tail_table(manifest: dict[str, Any]) -> str:
    """HTML: the head/tail summary per metadata language ("" for a one-list run)."""
    rows = language_head_tail(manifest)
    if not rows:
        return ""
    p = ((manifest.get("stats") or {}).get("metaclip") or {}).get("tail_proportion")
    cols = [("t", "t_lang"), ("entries", "entries"), ("entries_matched", "entries matched"),
            ("entries_over_t", "entries over t"), ("matches_before", "matches"),
            ("matches_after", "matches after balancing"), ("tail_share", "share of matches in tail")]
    head = "<tr><th>language</th>" + "".join(f"<th>{_e(title)}</th>" for _, title in cols) + "</tr>"
    body = "".join(
        f"<tr><td>{_e(r['language'])}</td>"
        + "".join(f'<td data-htlang="{_e(r["language"])}" data-key="{k}">'
                  f'{_e(_share(r[k]) if k == "tail_share" else r[k])}</td>' for k, _ in cols) + "</tr>"
        for r in rows)
    target = (f"English's tail proportion p = {p:.3f} at t_en; each other language's t_lang puts about the same "
              "share of its matches in the tail (entries with fewer than t_lang matches)." if p is not None
              else "No tail proportion (no English matches): every language uses t_en.")
    return (f"<h2>MetaCLIP head and tail per metadata language</h2><p>{_e(target)}</p>"
            f'<table id="language-head-tail">{head}{body}</table>')


def language_curves(manifest: dict[str, Any], entry_counts: dict[str, list] | None
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{lang: (ranks, counts)}``: the sorted non-zero per-entry counts of each metadata language, exact
    from the entry-count Parquet's ``language`` column when given, else the manifest's sampled curve."""
    langs = metaclip_languages(manifest)
    if entry_counts and entry_counts.get("language") and entry_counts.get("count_before"):
        by: dict[str, list[int]] = {}
        for lang, c in zip(entry_counts["language"], entry_counts["count_before"]):
            if c:
                by.setdefault(lang, []).append(c)
        out = {}
        for lang, cs in by.items():
            counts = np.sort(np.array(cs, dtype=float))[::-1]
            out[lang] = (np.arange(1, len(counts) + 1), counts)
        return out
    return {lang: (np.array(s["count_curve"]["rank"]), np.array(s["count_curve"]["count"], dtype=float))
            for lang, s in langs.items() if s.get("count_curve")}


def plot_entry_counts_per_language(manifest: dict[str, Any], entry_counts: dict[str, list] | None, ax
                                   ) -> str | None:
    """Sorted matches per entry (log-log) for the languages with the most matches, t_lang dashed."""
    langs = metaclip_languages(manifest)
    curves = language_curves(manifest, entry_counts)
    if not langs or not curves:
        return "no per-language entry counts (not a worldwide run, or nothing matched)"
    order = sorted(curves, key=lambda lang: (-curves[lang][1].sum(), lang))[:MAX_LANGUAGES]
    cmap = matplotlib.colormaps["tab20"]
    for i, lang in enumerate(order):
        color = cmap(i % 20)
        ranks, counts = curves[lang]
        t = langs.get(lang, {}).get("t")
        ax.loglog(ranks, counts, color=color, label=f"{lang} (t={t})" if t is not None else lang)
        if t is not None:
            ax.hlines(t, 1, ranks[-1], colors=color, linestyles="dashed", linewidth=0.8)
    more = len(curves) - len(order)
    ax.set_xlabel("entry rank within its language")
    ax.set_ylabel("matches per entry (before balancing)")
    ax.set_title("Entry counts per metadata language; dashed: t_lang"
                 + (f" ({more} more languages not drawn)" if more > 0 else ""))
    ax.legend(fontsize=7, ncol=2)
    return None
