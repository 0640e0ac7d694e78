"""report.html: produced next to the manifest, lists the manifest's counts, draws the plots
whose data exists and says which it skipped."""
from __future__ import annotations

import html.parser
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from clipcurate.schemas.uid import make_uid
from clipcurate.sinks import manifest as mf
from clipcurate.sinks.report import PLOTS, write_report
from clipcurate.sinks.shards import write_shard
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
PHOTOS = DATA / "open-images-cc-test-images"
CIFAR = DATA / "cifar10-test-jpeg" / "test"


def _record(path: Path, caption: str, score: float) -> dict:
    url = f"http://127.0.0.1:8000/{path.name}"
    with Image.open(path) as im:
        w, h = im.size
    return {"uid": make_uid(url, caption), "url": url, "caption": caption, "language": "en", "status": "ok",
            "width": w, "height": h, "original_width": w, "original_height": h, "image_format": "jpeg",
            "clip_score": score, "image": path.read_bytes(), "source": "cands.parquet", "offset": 0}


def make_run(out: Path, with_rows: bool = True) -> dict:
    """A run directory written by the project's own shard + manifest writers from real photos."""
    photos = sorted(PHOTOS.glob("*.jpg"))[:12] + sorted((CIFAR / "cat").glob("*.jpg"))[:8]
    recs = [_record(p, f"photo number {i} " + "x" * (i * 3), 0.40 - 0.01 * i) for i, p in enumerate(photos)]
    kept, dropped = recs[:14], recs[14:]
    shards = [write_shard(s, kept[s::2], str(out), tar=True, parquet=with_rows) for s in range(2)]
    rejects = []
    if with_rows:
        rej = [{**r, "stage": "score_filter", "reason": "low_score"} for r in dropped]
        from clipcurate.schemas.records import REJECT
        rejects = [write_shard(0, rej, str(out), tar=False, parquet=True, schema=REJECT, parquet_dir="rejects")]
        (out / "stats").mkdir()
        pq.write_table(pa.table({"entry_id": [0, 1, 2], "entry": ["cat", "dog", "photo"],
                                 "count_before": [50, 5, 1], "count_after": [10, 5, 1]}),
                       out / "stats" / "metaclip_entry_counts.parquet")
    counts = [(("ingest", "in"), 30), (("ingest", "kept"), 28), (("ingest", "dropped:bad_row"), 2),
              (("filter", "in"), 28), (("filter", "kept"), 20), (("filter", "dropped:too_short"), 5),
              (("filter", "dropped:lang"), 3), (("score_filter", "in"), 20), (("score_filter", "kept"), 14),
              (("score_filter", "dropped:low_score"), 6), (("write", "in"), 14), (("write", "kept"), 14)]
    stats = [("score_cut", {"mode": "top_fraction", "value": 0.26, "fraction": 0.7}),
             ("near_dup_clusters", {"1": 17, "2": 1, "3": 1})]
    manifest = mf.build_manifest(config={"balance": {"t": 10}, "scoring": {"threshold": None}}, config_hash="abc",
                                 seed=7, inputs=[], stage_order=["ingest", "filter", "score_filter", "write"],
                                 counts=counts, stats=stats, shards=shards, rejects=rejects, until=None,
                                 versions_=mf.versions())
    mf.write_manifest(str(out), manifest)
    return manifest


class _Cells(html.parser.HTMLParser):
    """Collects data-* attributes with the text of their element, and img/notes ids."""

    def __init__(self):
        super().__init__()
        self.cells, self.ids, self._open = {}, set(), None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.ids.add("src:" + a["src"])
        key = tuple(sorted((k, v) for k, v in a.items() if k.startswith("data-") and k != "data-value"))
        self._open = key if key else None
        if "data-value" in a:
            self.cells[("total",)] = a["data-value"]

    def handle_data(self, data):
        if self._open:
            self.cells[self._open] = data
            self._open = None


def _parse(path: str) -> _Cells:
    p = _Cells()
    p.feed(Path(path).read_text(encoding="utf-8"))
    return p


def test_report_lists_manifest_counts_and_draws_all_plots(tmp_path):
    manifest = make_run(tmp_path)
    path = write_report(str(tmp_path))
    assert Path(path) == tmp_path / "report.html"
    page = _parse(path)
    for stage, c in manifest["stages"].items():
        assert page.cells[(("data-key", "in"), ("data-stage", stage))] == str(c["in"])
        assert page.cells[(("data-key", "kept"), ("data-stage", stage))] == str(c["kept"])
        for reason, n in c["dropped"].items():
            assert page.cells[(("data-reason", reason), ("data-stage", stage))] == f"{reason}: {n}"
    assert page.cells[("total",)] == str(manifest["total_samples"]) == "14"
    for s in manifest["shards"]:
        assert page.cells[(("data-shard-rows", str(s["shard"])),)] == str(s["rows"])
    for key, _, _ in PLOTS:  # every plot has data here
        png = tmp_path / "report_files" / f"{key}.png"
        assert f"src:report_files/{key}.png" in page.ids, key
        with Image.open(png) as im:
            assert im.format == "PNG" and im.width > 300


def test_report_skips_plots_without_data_with_a_note(tmp_path):
    make_run(tmp_path, with_rows=False)
    page = _parse(write_report(str(tmp_path)))
    assert "src:report_files/funnel.png" in page.ids and "src:report_files/dup_clusters.png" in page.ids
    for key in ("caption_language", "caption_length", "image_size", "clip_score", "entry_counts"):
        assert f"plot-{key}-missing" in page.ids, key
        assert not (tmp_path / "report_files" / f"{key}.png").exists()
    text = (tmp_path / "report.html").read_text()
    assert "no parquet/*.parquet" in text


def test_report_needs_a_manifest(tmp_path):
    import pytest
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        write_report(str(tmp_path))


def test_report_is_deterministic(tmp_path):
    make_run(tmp_path)
    first = {p.name: p.read_bytes() for p in [Path(write_report(str(tmp_path)))] + sorted((tmp_path / "report_files").glob("*.png"))}
    second = {p.name: p.read_bytes() for p in [Path(write_report(str(tmp_path)))] + sorted((tmp_path / "report_files").glob("*.png"))}
    assert first == second
    assert json.loads((tmp_path / "manifest.json").read_text())["total_samples"] == 14


def test_times_are_iso_8601_utc():
    from clipcurate.sinks.report import iso_times
    stats = {"download": {"max_last_done_unix": 1796333407.13, "bytes": 5}, "x": [{"min_first_submit_unix": 0}]}
    assert iso_times(stats) == {"download": {"max_last_done_utc": "2026-12-03T21:30:07Z", "bytes": 5},
                                "x": [{"min_first_submit_utc": "1970-01-01T00:00:00Z"}]}


def test_only_singleton_clusters_is_a_note_not_an_empty_chart(tmp_path):
    manifest = make_run(tmp_path)
    manifest["stats"]["near_dup_clusters"] = {"1": 17}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    page = _parse(write_report(str(tmp_path)))
    assert "plot-dup_clusters-missing" in page.ids
    assert "17 records had no near duplicate" in (tmp_path / "report.html").read_text()


def test_gallery_and_language_funnel_from_real_photos(tmp_path):
    """Thumbnails of real photos chosen by smallest uid; a funnel per language when rows hold two."""
    from clipcurate.sinks.examples import EXAMPLES_FILE, example_rows, examples_bytes

    make_run(tmp_path)
    photos = sorted(PHOTOS.glob("*.jpg"))[:5]
    recs = [_record(p, f"a photo {i}", 0.3) for i, p in enumerate(photos)]
    values = [(r["uid"], "", r["caption"], r["clip_score"], r["width"], r["height"], None, r["image"]) for r in recs]
    rows = example_rows(("kept", "ok"), values[:3]) + example_rows(("score_filter", "low_score"), values[3:])
    (tmp_path / EXAMPLES_FILE).write_bytes(examples_bytes(rows))
    # the rejects become French: two languages
    rej = pq.read_table(tmp_path / "rejects" / "00000.parquet")
    rej = rej.set_column(rej.schema.get_field_index("language"), "language", pa.array(["fr"] * rej.num_rows))
    pq.write_table(rej, tmp_path / "rejects" / "00000.parquet")
    text = Path(write_report(str(tmp_path))).read_text()
    for r in rows:
        assert f'data-uid="{r["uid"]}"' in text
        with Image.open(__import__("io").BytesIO(r["thumbnail"])) as im:
            assert max(im.size) == 96
    assert text.count("data:image/jpeg;base64,") == 5
    page = _parse(str(tmp_path / "report.html"))
    assert page.cells[(("data-key", "kept"), ("data-lang", "en"))] == "14"
    assert page.cells[(("data-key", "dropped:score_filter"), ("data-lang", "fr"))] == "6"
    assert page.cells[(("data-key", "kept"), ("data-lang", "fr"))] == "0"


def test_worldwide_metaclip_funnel_per_language_from_the_manifest(tmp_path):
    manifest = make_run(tmp_path, with_rows=False)
    manifest["stats"]["metaclip"] = {"languages": {
        "en": {"t": 20, "funnel": {"match:ok": 12, "match:no_match": 3, "balance:ok": 10, "balance:balanced_out": 2}},
        "ja": {"t": 4, "funnel": {"match:ok": 5, "balance:ok": 5}}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    page = _parse(write_report(str(tmp_path)))
    assert "language-funnel-metaclip" in page.ids
    assert page.cells[(("data-key", "match:no_match"), ("data-mlang", "en"))] == "3"
    assert page.cells[(("data-key", "balance:ok"), ("data-mlang", "ja"))] == "5"
    assert page.cells[(("data-key", "match:no_match"), ("data-mlang", "ja"))] == "0"
