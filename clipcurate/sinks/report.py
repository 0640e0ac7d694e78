"""``report.html`` + PNG plots for one pipeline run, readable from disk without a server.

``write_report(output_dir)`` reads ``manifest.json`` (required) and, when present,
``parquet/*.parquet`` (kept rows), ``rejects/*.parquet`` (dropped rows with stage and
reason) and ``stats/metaclip_entry_counts.parquet`` and ``stats/examples.parquet`` (thumbnails of kept
and dropped samples, :mod:`clipcurate.sinks.examples`); it writes ``report.html`` next to the
manifest and its plots under ``report_files/``.  A plot whose data is absent is replaced
by a note saying what is missing.  Counts in the HTML tables come from the manifest, so
they match it exactly; distributions come from the Parquet rows (at most ``max_rows``
per kind, read in file order, the cap noted on the page).
"""
from __future__ import annotations

import base64
import collections
import datetime
import html
import io
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from apache_beam.io.filesystems import FileSystems  # noqa: E402

from clipcurate.sinks.examples import KEPT, THUMB_PX, read_examples  # noqa: E402
from clipcurate.sinks.files import join, read_bytes, write_atomic  # noqa: E402
from clipcurate.sinks.report_worldwide import (head_tail_table, metaclip_languages,  # noqa: E402
                                               plot_entry_counts_per_language)

log = logging.getLogger(__name__)

PLOTS_DIR = "report_files"
ROW_COLUMNS = ["uid", "caption", "language", "width", "height", "original_width", "original_height", "clip_score"]


@dataclass
class RunData:
    """What the report draws from: the manifest, kept rows and rejected rows (column dicts)."""
    manifest: dict[str, Any]
    kept: dict[str, list] = field(default_factory=dict)
    rejects: dict[str, list] = field(default_factory=dict)
    entry_counts: dict[str, list] | None = None
    examples: list[dict[str, Any]] | None = None  # stats/examples.parquet rows (thumbnails)
    notes: list[str] = field(default_factory=list)


def _match(pattern: str) -> list[str]:
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def _read_columns(paths: list[str], columns: list[str], max_rows: int) -> tuple[dict[str, list], bool]:
    """Column lists from Parquet files in order, up to ``max_rows`` rows; (columns, truncated)."""
    tables, n = [], 0
    for path in paths:
        pf = pq.ParquetFile(io.BytesIO(read_bytes(path)))
        t = pf.read(columns=[c for c in columns if c in pf.schema_arrow.names])
        tables.append(t.slice(0, max_rows - n))
        n += tables[-1].num_rows
        if n >= max_rows:
            return _concat(tables), True
    return _concat(tables), False


def _concat(tables: list[pa.Table]) -> dict[str, list]:
    out: dict[str, list] = {}
    for t in tables:
        for name in t.column_names:
            out.setdefault(name, []).extend(t.column(name).to_pylist())
    return out


def load_run(output_dir: str, max_rows: int = 200_000) -> RunData:
    """Read the run's manifest and (optional) Parquet parts; raises FileNotFoundError without a manifest."""
    path = join(output_dir, "manifest.json")
    if not FileSystems.exists(path):
        raise FileNotFoundError(f"{path} not found: write_report needs a finished run's manifest")
    data = RunData(json.loads(read_bytes(path)))
    for kind, sub, cols in (("kept", "parquet", ROW_COLUMNS), ("rejects", "rejects", ROW_COLUMNS + ["stage", "reason"])):
        files = _match(join(output_dir, sub, "*.parquet"))
        if not files:
            data.notes.append(f"no {sub}/*.parquet: {kind} row distributions not drawn")
            continue
        cols_, truncated = _read_columns(files, cols, max_rows)
        setattr(data, kind, cols_)
        if truncated:
            data.notes.append(f"{kind} distributions use the first {max_rows:,} rows of {sub}/")
    entry = join(output_dir, "stats", "metaclip_entry_counts.parquet")
    if FileSystems.exists(entry):
        data.entry_counts, _ = _read_columns([entry], ["entry_id", "entry", "count_before", "count_after",
                                                       "language"], 10**9)
    data.examples = read_examples(output_dir)
    return data


# -- plots: each takes RunData and an Axes, returns None when drawn or a note why not -------

def plot_funnel(d: RunData, ax) -> str | None:
    stages = d.manifest.get("stages") or {}
    if not stages:
        return "manifest has no stage counts"
    names = list(stages)[::-1]
    reasons = sorted({r for s in stages.values() for r in s.get("dropped", {})})
    cmap = plt.get_cmap("tab20")
    ax.barh(names, [stages[n]["kept"] for n in names], color="#2a9d8f", label="kept")
    left = np.array([stages[n]["kept"] for n in names], dtype=float)
    for i, r in enumerate(reasons):
        vals = np.array([stages[n].get("dropped", {}).get(r, 0) for n in names], dtype=float)
        ax.barh(names, vals, left=left, color=cmap(i % 20), label=f"dropped: {r}")
        left += vals
    ax.set_xlabel("records (kept + dropped = in)")
    ax.set_title("Funnel: records per stage and drop reason")
    ax.legend(fontsize=7, loc="lower right")
    return None


def plot_language(d: RunData, ax) -> str | None:
    langs = [x or "unknown" for x in d.kept.get("language", [])]
    if not langs:
        return "no caption languages in the kept rows"
    names, counts = np.unique(langs, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:20]
    ax.bar([names[i] for i in order], counts[order], color="#457b9d")
    ax.set_title("Caption language (kept rows, top 20)")
    ax.set_ylabel("rows")
    return None


def plot_caption_length(d: RunData, ax) -> str | None:
    kept = [len(c) for c in d.kept.get("caption", []) if c is not None]
    if not kept:
        return "no captions in the kept rows"
    dropped = [len(c) for c in d.rejects.get("caption", []) if c is not None]
    _kept_dropped_hist(ax, kept, dropped, bins=40, dropped_label="rejected")
    ax.set_xlabel("caption length (characters)")
    ax.set_title("Caption length")
    ax.legend()
    return None


def _kept_dropped_hist(ax, kept: list, dropped: list, *, bins: int, dropped_label: str) -> None:
    """Overlaid histograms of kept and dropped values on shared bins."""
    edges = np.histogram_bin_edges(kept + dropped, bins=bins)
    ax.hist(kept, bins=edges, alpha=0.7, label=f"kept ({len(kept):,})", color="#2a9d8f")
    if dropped:
        ax.hist(dropped, bins=edges, alpha=0.5, label=f"{dropped_label} ({len(dropped):,})", color="#e76f51")
    ax.set_ylabel("rows")


def plot_image_size(d: RunData, ax) -> str | None:
    w = d.kept.get("original_width") or []
    h = d.kept.get("original_height") or []
    pairs = [(a, b) for a, b in zip(w, h) if a and b]
    if not pairs:
        pairs = [(a, b) for a, b in zip(d.kept.get("width", []), d.kept.get("height", [])) if a and b]
    if not pairs:
        return "no image sizes in the kept rows"
    x, y = np.array(pairs, dtype=float).T
    # a 2-D histogram on log axes: readable for 10 images and for 10 million
    cells = ax.hexbin(x, y, gridsize=int(np.clip(np.sqrt(len(pairs)), 8, 40)), xscale="log", yscale="log", bins="log", mincnt=1, cmap="viridis")
    ax.figure.colorbar(cells, ax=ax, label="images per cell")
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    ax.set_title(f"Image size before resizing ({len(pairs):,} kept images)")
    return None


def score_cut(manifest: dict[str, Any]) -> float | None:
    """The score threshold applied by the run: stats.score_cut.value, else config scoring.threshold."""
    cut = (manifest.get("stats") or {}).get("score_cut")
    if isinstance(cut, dict) and isinstance(cut.get("value"), (int, float)):
        return float(cut["value"])
    return ((manifest.get("config") or {}).get("scoring") or {}).get("threshold")


def plot_scores(d: RunData, ax) -> str | None:
    kept = [s for s in d.kept.get("clip_score", []) if s is not None]
    dropped = [s for s, st in zip(d.rejects.get("clip_score", []), d.rejects.get("stage", []))
               if s is not None and st and st.startswith("score")]
    if not kept and not dropped:
        return "no clip_score values (scoring off or not reached)"
    _kept_dropped_hist(ax, kept, dropped, bins=50, dropped_label="below the cut")
    cut = score_cut(d.manifest)
    if cut is not None:
        ax.axvline(cut, color="black", linestyle="--", label=f"cut = {cut:.4g}")
    ax.set_xlabel("CLIP score")
    ax.set_title("CLIP score and the cut")
    ax.legend()
    return None


def plot_entry_counts(d: RunData, ax) -> str | None:
    if not d.entry_counts or not d.entry_counts.get("count_before"):
        return "no stats/metaclip_entry_counts.parquet (balancing off)"
    for col, color in (("count_before", "#e76f51"), ("count_after", "#2a9d8f")):
        counts = np.sort(np.array([c for c in d.entry_counts[col] if c], dtype=float))[::-1]
        if len(counts):
            ax.loglog(np.arange(1, len(counts) + 1), counts, color=color, label=col.replace("_", " "))
    t = ((d.manifest.get("config") or {}).get("balance") or {}).get("t")
    if t:
        ax.axhline(t, color="black", linestyle="--", label=f"t = {t:,}")
    ax.set_xlabel("entry rank")
    ax.set_ylabel("matches per entry")
    ax.set_title("Metadata entry counts before / after balancing")
    ax.legend()
    return None


def cluster_stats(manifest: dict[str, Any]) -> dict[str, dict[int, int]]:
    """Stats named ``*_clusters`` of the form {size: count}, as ints."""
    out = {}
    for name, value in (manifest.get("stats") or {}).items():
        if name.endswith("_clusters") and isinstance(value, dict):
            try:
                out[name] = {int(k): int(v) for k, v in value.items()}
            except (TypeError, ValueError):
                continue
    return out


def plot_clusters(d: RunData, ax) -> str | None:
    stats = cluster_stats(d.manifest)
    if not stats:
        return "no *_clusters stats (near-duplicate removal off or found none)"
    if not any(size > 1 and n for sizes in stats.values() for size, n in sizes.items()):
        singles = sum(sizes.get(1, 0) for sizes in stats.values())
        return (f"no duplicate clusters: near-duplicate removal found none"
                + (f" ({singles:,} records had no near duplicate)" if singles else ""))
    width = 0.8 / len(stats)
    for i, (name, sizes) in enumerate(sorted(stats.items())):
        xs = sorted(sizes)
        ax.bar(np.arange(len(xs)) + i * width, [sizes[x] for x in xs], width=width, label=name, log=True)
        ax.set_xticks(np.arange(len(xs)), [str(x) for x in xs])
    ax.set_xlabel("cluster size")
    ax.set_ylabel("clusters")
    ax.set_title("Duplicate cluster sizes")
    ax.legend()
    return None


PLOTS: list[tuple[str, str, Callable[[RunData, Any], str | None]]] = [
    ("funnel", "Funnel", plot_funnel),
    ("caption_language", "Caption language", plot_language),
    ("caption_length", "Caption length", plot_caption_length),
    ("image_size", "Image size", plot_image_size),
    ("clip_score", "Score histogram", plot_scores),
    ("entry_counts", "Per-entry counts (balancing)", plot_entry_counts),
    ("dup_clusters", "Duplicate clusters", plot_clusters),
]
# drawn only for worldwide MetaCLIP runs (metadata per language)
WORLDWIDE_PLOTS: list[tuple[str, str, Callable[[RunData, Any], str | None]]] = [
    ("entry_counts_language", "Per-entry counts per language (worldwide balancing)",
     lambda d, ax: plot_entry_counts_per_language(d.manifest, d.entry_counts, ax)),
]


def _render(d: RunData, fn) -> tuple[bytes | None, str | None]:
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        note = fn(d, ax)
        if note:
            return None, note
        if not ax.has_data():
            return None, "no data to draw"
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
        return buf.getvalue(), None
    finally:
        plt.close(fig)


# -- HTML -----------------------------------------------------------------------------

def _e(x: Any) -> str:
    return html.escape(str(x))


def _stage_table(stages: dict[str, Any]) -> str:
    rows = []
    for name, s in stages.items():
        dropped = s.get("dropped", {})
        cells = (f'<td>{_e(name)}</td><td data-stage="{_e(name)}" data-key="in">{s["in"]}</td>'
                 f'<td data-stage="{_e(name)}" data-key="kept">{s["kept"]}</td>'
                 f'<td data-stage="{_e(name)}" data-key="dropped_total">{sum(dropped.values())}</td><td>'
                 + ", ".join(f'<span data-stage="{_e(name)}" data-reason="{_e(r)}">{_e(r)}: {n}</span>'
                             for r, n in dropped.items())
                 # kept but changed (e.g. safety_image's face_blurred); ingest's file counts are shown elsewhere
                 + "".join(f'; <span data-stage="{_e(name)}" data-other="{_e(k)}">{_e(k)}: {n}</span>'
                           for k, n in s.get("other", {}).items() if not k.startswith("files_")) + "</td>")
        rows.append(f"<tr>{cells}</tr>")
    head = "<tr><th>stage</th><th>in</th><th>kept</th><th>dropped</th><th>drop reasons</th></tr>"
    return f'<table id="funnel">{head}{"".join(rows)}</table>'


def _shard_table(shards: list[dict[str, Any]]) -> str:
    rows = "".join(f'<tr><td>{_e(s.get("tar", ""))}</td><td>{_e(s.get("parquet", ""))}</td>'
                   f'<td data-shard-rows="{s.get("shard", i)}">{s.get("rows", "")}</td></tr>'
                   for i, s in enumerate(shards))
    return f'<table id="shards"><tr><th>tar</th><th>parquet</th><th>rows</th></tr>{rows}</table>'


def iso_times(value: Any) -> Any:
    """A copy of a JSON value in which numbers under keys ending in ``_unix`` become ISO 8601
    UTC strings, under the key with ``_utc`` instead (``max_last_done_unix`` -> ``max_last_done_utc``)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(k, str) and k.endswith("_unix") and isinstance(v, (int, float)) and not isinstance(v, bool):
                t = datetime.datetime.fromtimestamp(v, tz=datetime.timezone.utc)
                out[k[:-5] + "_utc"] = t.isoformat(timespec="seconds").replace("+00:00", "Z")
            else:
                out[k] = iso_times(v)
        return out
    if isinstance(value, list):
        return [iso_times(v) for v in value]
    return value


def language_funnel(d: RunData) -> tuple[list[str], list[tuple[str, int, dict[str, int]]]] | None:
    """Per caption language: kept rows and rows dropped per stage (from kept and rejected rows
    that carry a language); None unless the rows hold two languages or more."""
    kept = collections.Counter(x for x in d.kept.get("language", []) if x)
    dropped: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for lang, stage in zip(d.rejects.get("language", []), d.rejects.get("stage", [])):
        if lang:
            dropped[lang][stage or "?"] += 1
    langs = set(kept) | set(dropped)
    if len(langs) < 2:
        return None
    order = list(d.manifest.get("stages") or {})
    stages = sorted({s for c in dropped.values() for s in c}, key=lambda s: (order.index(s) if s in order else 99, s))
    rows = [(lang, kept[lang], dict(dropped[lang])) for lang in langs]
    rows.sort(key=lambda r: (-(r[1] + sum(r[2].values())), r[0]))
    return stages, rows


def _metaclip_language_table(d: RunData) -> str:
    """Worldwide MetaCLIP runs: the exact per-language record funnel of match and balance
    (``stats.metaclip.languages[lang].funnel``, ``{"stage:status": n}``), with t per language."""
    langs = (((d.manifest.get("stats") or {}).get("metaclip") or {}).get("languages")) or {}
    funnels = {lang: v.get("funnel") or {} for lang, v in langs.items() if isinstance(v, dict)}
    if len(funnels) < 2:
        return head_tail_table(d.manifest)
    keys = sorted({k for f in funnels.values() for k in f}, key=lambda k: (not k.startswith("match"), k != "match:ok", k))
    head = "<tr><th>language</th><th>t</th>" + "".join(f"<th>{_e(k)}</th>" for k in keys) + "</tr>"
    body = "".join(
        f"<tr><td>{_e(lang)}</td><td>{_e(langs[lang].get('t', ''))}</td>"
        + "".join(f'<td data-mlang="{_e(lang)}" data-key="{_e(k)}">{f.get(k, 0)}</td>' for k in keys) + "</tr>"
        for lang, f in sorted(funnels.items()))
    return ("<h2>MetaCLIP funnel per metadata language</h2><p>Exact counts from the manifest "
            f"(stats.metaclip.languages).</p><table id=\"language-funnel-metaclip\">{head}{body}</table>"
            + head_tail_table(d.manifest))


def _language_table(d: RunData) -> str:
    funnel = language_funnel(d)
    if funnel is None:
        return _metaclip_language_table(d)
    stages, rows = funnel
    head = ("<tr><th>language</th><th>identified</th>" + "".join(f"<th>dropped at {_e(s)}</th>" for s in stages)
            + "<th>kept</th></tr>")
    body = "".join(
        f'<tr><td>{_e(lang)}</td><td data-lang="{_e(lang)}" data-key="identified">{kept + sum(drops.values())}</td>'
        + "".join(f'<td data-lang="{_e(lang)}" data-key="dropped:{_e(s)}">{drops.get(s, 0)}</td>' for s in stages)
        + f'<td data-lang="{_e(lang)}" data-key="kept">{kept}</td></tr>' for lang, kept, drops in rows)
    return ("<h2>Funnel per caption language</h2><p>Rows that carry a language (kept rows and rejects; "
            "drops before language identification have none).</p>"
            f'<table id="language-funnel">{head}{body}</table>' + _metaclip_language_table(d))


def _card(ex: dict[str, Any]) -> str:
    src = "data:image/jpeg;base64," + base64.b64encode(ex["thumbnail"]).decode("ascii")
    caption = ex.get("caption") or ""
    short = caption if len(caption) <= 100 else caption[:99] + "…"
    score = ex.get("clip_score")
    extra = [f"score {score:.4f}" if score is not None else "no score"]
    if ex.get("duplicate_of"):
        extra.append(f"duplicate of {ex['duplicate_of'][:10]}")
    return (f'<figure class="ex" data-uid="{_e(ex["uid"])}"><img src="{src}" alt="{_e(short)}" '
            f'title="{_e(caption)}"><figcaption>{_e(short)}<br><small>{_e(" · ".join(extra))}</small>'
            "</figcaption></figure>")


def _reject_captions(d: RunData, stage: str, reason: str, n: int = 3) -> list[tuple[str, str]]:
    """(uid, caption) of up to n rejected rows of (stage, reason), smallest uid first."""
    rows = {(u, c) for u, c, s, r in zip(d.rejects.get("uid", []), d.rejects.get("caption", []),
                                          d.rejects.get("stage", []), d.rejects.get("reason", []))
            if s == stage and r == reason and u}
    return sorted(rows, key=lambda x: (x[0], x[1] or ""))[:n]


def _gallery(d: RunData) -> str:
    stages = d.manifest.get("stages") or {}
    parts = ["<h2>Examples</h2>",
             f"<p>Chosen by smallest uid (the same on every run); thumbnails at most {THUMB_PX} px, "
             "embedded in this page.</p>"]
    if d.examples is None:
        parts.append('<p class="note" id="examples-missing">No example thumbnails: this run has no '
                     f"stats/examples.parquet.</p>")
    by = collections.defaultdict(list)
    for ex in d.examples or []:
        by[(ex["stage"], ex["reason"])].append(ex)
    kept = by.get((KEPT, "ok"), [])
    parts.append(f"<h3>Kept ({d.manifest.get('total_samples', 0):,} samples)</h3>")
    parts.append(f'<div class="gallery" id="examples-kept">{"".join(map(_card, kept))}</div>' if kept
                 else '<p class="note">No kept image to show.</p>')
    order = list(stages)
    at_download = order.index("download") if "download" in order else len(order)
    for i, (stage, s) in enumerate(stages.items()):
        for reason, n in (s.get("dropped") or {}).items():
            parts.append(f"<h3>Dropped at {_e(stage)}: {_e(reason)} ({n:,})</h3>")
            exs = by.get((stage, reason))
            if exs:
                parts.append(f'<div class="gallery" id="examples-{_e(stage)}-{_e(reason)}">'
                             f'{"".join(map(_card, exs))}</div>')
                continue
            why = "no image: dropped before or at download" if i <= at_download else "no image kept for this reason"
            caps = _reject_captions(d, stage, reason)
            if caps:
                items = "".join(f"<li><code>{_e(u[:10])}</code> {_e(c)}</li>" for u, c in caps)
                parts.append(f'<p class="note">{why}; captions:</p><ul class="captions">{items}</ul>')
            else:
                parts.append(f'<p class="note">{why}; no rejected rows to show '
                             "(rejects are written with sink.keep_rejects = true).</p>")
    return "\n".join(parts)


def _html(d: RunData, figures: list[tuple[str, str, str | None, str | None]]) -> str:
    m = d.manifest
    total = m.get("total_samples", sum(s.get("rows", 0) for s in m.get("shards", [])))
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>clipcurate run report</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}td:first-child{text-align:left}"
        ".note{color:#a33}.gallery{display:flex;flex-wrap:wrap;gap:8px}"
        ".ex{width:150px;margin:0;font-size:11px}.ex img{display:block;max-width:96px;max-height:96px}"
        "img{max-width:100%}</style></head><body><h1>clipcurate run report</h1>",
        f"<p>config hash <code>{_e(m.get('config_hash', ''))}</code>, seed {_e(m.get('seed'))}, "
        f"<span id='total_samples' data-value='{total}'>{total}</span> samples in {len(m.get('shards', []))} shards"
        f"{', stopped after ' + _e(m['until']) if m.get('until') else ''}.</p>",
        "<h2>Stages</h2>", _stage_table(m.get("stages") or {}), _language_table(d),
    ]
    for key, title, src, note in figures:
        parts.append(f"<h2>{_e(title)}</h2>")
        parts.append(f'<img id="plot-{key}" src="{_e(src)}" alt="{_e(title)}">' if src
                     else f'<p class="note" id="plot-{key}-missing">Not drawn: {_e(note)}.</p>')
    parts.append(_gallery(d))
    parts += ["<h2>Shards</h2>", _shard_table(m.get("shards", []))]
    parts += ["<h2>Stats</h2><pre>", _e(json.dumps(iso_times(m.get("stats", {})), indent=1, sort_keys=True)),
              "</pre>"]
    parts += ["<h2>Versions</h2><pre>", _e(json.dumps(m.get("versions", {}), indent=1)), "</pre>"]
    if d.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in d.notes) + "</ul>")
    parts += ["<h2>Config</h2><pre>", _e(json.dumps(m.get("config", {}), indent=1)), "</pre></body></html>"]
    return "\n".join(parts)


def write_report(output_dir: str, max_rows: int = 200_000) -> str:
    """Write ``report.html`` and its PNG plots for the run in ``output_dir``; return the HTML path."""
    d = load_run(output_dir, max_rows)
    figures = []
    for key, title, fn in PLOTS + (WORLDWIDE_PLOTS if metaclip_languages(d.manifest) else []):
        png, note = _render(d, fn)
        if png is not None:
            write_atomic(join(output_dir, PLOTS_DIR, f"{key}.png"), png)
            figures.append((key, title, f"{PLOTS_DIR}/{key}.png", None))
        else:
            figures.append((key, title, None, note))
    path = join(output_dir, "report.html")
    write_atomic(path, _html(d, figures).encode("utf-8"))
    log.info("report written: %s", path)
    return path
