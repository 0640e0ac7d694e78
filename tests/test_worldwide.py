"""Worldwide (MetaCLIP 2) curation: per-language metadata, routing, script padding, per-language t."""
from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from clipcurate.balancing.config import BalanceConfig
from clipcurate.balancing.entries import MetadataError, load_metadata
from clipcurate.balancing.matching import Matcher, WorldwideMatcher, is_unspaced_char, match_reference, pad_entry
from clipcurate.balancing.sampling import (entry_probabilities, language_thresholds, t_for_proportion,
                                           tail_proportion, worldwide_probabilities)
from clipcurate.balancing.worldwide import Router, parse_lang_map
from clipcurate.schemas.uid import make_uid
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
LAION = DATA / "img2dataset-tests" / "test_10000.parquet"
CLUEWEB = DATA / "resiliparse-warc" / "clueweb-quirk.warc.gz"
LANGS = ["de", "en", "es", "fr", "ja", "ko", "ru", "th", "zh"]


# -- matching: MetaCLIP 2 padding rule ----------------------------------------------------------

def test_unspaced_scripts_match_only_with_script_padding():
    entries = ["猫", "東京", "แมว", "東京タワー", "cat", "夜景"]
    plain, world = Matcher(entries), Matcher(entries, script_padding=True)
    hand_checked = {"我喜欢猫。": [0], "東京タワーの夜景": [1, 3, 5], "แมวน่ารัก": [2],
                    "a cat.": [4], "concatenate": [], "Tokyo 東京": [1]}
    for caption, want in hand_checked.items():
        assert world.match(caption) == want, caption
        assert match_reference(caption, entries, script_padding=True) == want
    # MetaCLIP 1 padding (the plain-list path) finds none of the unspaced matches
    assert [plain.match(c) for c in ("我喜欢猫。", "東京タワーの夜景", "แมวน่ารัก")] == [[], [], []]
    assert plain.match("a cat.") == [4] and plain.match("Tokyo 東京") == [1]


def test_pad_entry_rule():
    assert pad_entry("cat") == " cat " == pad_entry("cat", True)
    assert pad_entry("猫", True) == "猫"
    assert pad_entry("iPhone 猫", True) == " iPhone 猫"  # spaced start, unspaced end
    assert pad_entry("タワーA", True) == "タワーA "
    assert pad_entry("C++", True) == " C++"  # punctuation end: not padded (MetaCLIP 2's is_punctuation)


# -- metadata file format ---------------------------------------------------------------------------

def test_worldwide_metadata_file_ids_and_errors(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"zh": ["猫", "狗", "猫"], "en": ["cat", " "], "ja": ["猫"]}, ensure_ascii=False))
    md = load_metadata(str(path))
    assert md.worldwide and md.entries == ["cat", " ", "猫", "猫", "狗", "猫"]  # languages sorted
    assert md.offsets() == {"en": (0, 2), "ja": (2, 1), "zh": (3, 3)}
    assert (md.num_blank, md.num_duplicate) == (1, 1)  # 猫 in ja and zh is not a duplicate
    assert md.summary()["language_entries"] == {"en": 2, "ja": 1, "zh": 3}
    for bad, msg in [({}, "empty"), ({"EN": ["a"]}, "lower-case"), ({"en": "cat"}, "expected a JSON array"),
                     ({"en": ["a", 3]}, "item 1")]:
        path.write_text(json.dumps(bad))
        with pytest.raises(MetadataError, match=msg):
            load_metadata(str(path))


def test_router():
    r = Router(["en", "zh", "nb", "other"])
    assert [r.route(c) for c in ("en", "zh", "yue", "no", "sv", "und", None)] == \
        ["en", "zh", "zh", "nb", "other", "other", "other"]
    assert Router(["en"], "other").route("sv") is None  # no "other" list
    assert Router(["en", "other"], "drop").route("sv") is None
    assert Router(["en", "zh"], lang_map=parse_lang_map(["ja=zh"])).route("ja") == "zh"
    with pytest.raises(ValueError, match="not languages of the metadata"):
        Router(["en"], lang_map={"ja": "zh"})
    with pytest.raises(ValueError, match="lid=metadata"):
        parse_lang_map(["ja"])


# -- per-language t (tail-proportion rule) -------------------------------------------------------

def _t_for_p_reference(counts, p):
    """From the paper/code, written naively: try every distinct count as t; the cumulative share of
    matches of the entries sorted by count up to and including that position, closest to p."""
    order = sorted(counts)
    total = sum(order)
    best = None
    running = 0
    for c in order:
        running += c
        d = abs(running / total - p)
        if best is None or d < best[0]:
            best = (d, c)
    return max(1, best[1])


def test_tail_proportion_rule_against_naive_reference():
    rng = np.random.default_rng(0)
    for _ in range(200):
        counts = rng.zipf(1.6, size=rng.integers(5, 400)).clip(max=10**6)
        counts[rng.random(counts.size) < 0.2] = 0
        p = float(rng.uniform(0.01, 0.99))
        assert t_for_proportion(counts, p) == _t_for_p_reference(counts.tolist(), p)
    en = np.array([100, 50, 10, 5, 1, 0])
    assert tail_proportion(en, 20) == pytest.approx(16 / 166)  # entries strictly below t, counted whole
    counts = np.concatenate([en, [40, 20, 8, 4, 2, 1, 1]])
    thresholds, p = language_thresholds(counts, {"en": (0, 6), "zh": (6, 7)}, t_en=20)
    assert thresholds == {"en": 20, "zh": 4} and p == pytest.approx(16 / 166)
    probs, _, _ = worldwide_probabilities(counts, {"en": (0, 6), "zh": (6, 7)}, t_en=20)
    assert probs.tolist() == entry_probabilities(en, 20).tolist() + entry_probabilities(counts[6:], 4).tolist()
    # no English match: every language keeps t_en; an explicit p overrides
    assert language_thresholds(counts * np.r_[[0] * 6, [1] * 7], {"en": (0, 6), "zh": (6, 7)}, 20)[0]["zh"] == 20
    assert language_thresholds(counts, {"en": (0, 6), "zh": (6, 7)}, 20, p=1.0)[0]["zh"] == 40


# -- real metadata (wordfreq, PyThaiNLP) on real multilingual captions -------------------------------

@pytest.fixture(scope="module")
def world_file(tmp_path_factory):
    pytest.importorskip("wordfreq", reason="pip install 'clipcurate[worldwide]' (scripts/setup.sh installs it)")
    pytest.importorskip("pythainlp", reason="pip install 'clipcurate[worldwide]' (scripts/setup.sh installs it)")
    from clipcurate.balancing.worldwide_metadata import build_worldwide_metadata
    folder = tmp_path_factory.mktemp("world")
    other = folder / "other.txt"
    other.write_text("Paris\nLondon\niPhone\n", encoding="utf-8")
    out = folder / "worldwide.json"
    stats = build_worldwide_metadata(str(out), LANGS, min_zipf=3.0, other=[str(other)])
    assert sorted(stats["languages"]) == sorted(LANGS + ["other"])
    # deterministic bytes
    again = build_worldwide_metadata(str(folder / "again.json"), LANGS, min_zipf=3.0, other=[str(other)])
    assert (folder / "again.json").read_bytes() == out.read_bytes() and again["entries"] == stats["entries"]
    return str(out)


@pytest.fixture(scope="module")
def laion_records():
    from clipcurate.filters.langid import get_identifier
    detect = get_identifier("fast").detect
    rows = pq.read_table(LAION, columns=["URL", "TEXT"]).to_pylist()
    out = []
    for r in rows:
        lang, score = detect(r["TEXT"] or "")
        out.append({"uid": make_uid(r["URL"], r["TEXT"]), "url": r["URL"], "caption": r["TEXT"],
                    "language": lang, "language_score": score})
    return out


def test_real_metadata_languages_and_counts(world_file):
    md = load_metadata(world_file)
    n = md.summary()["language_entries"]
    assert set(n) == set(LANGS) | {"other"} and all(n[lang] > 10_000 for lang in LANGS)
    world = json.loads(Path(world_file).read_text(encoding="utf-8"))
    assert "猫" in world["zh"] and "猫" in world["ja"] and "แมว" in world["th"] and "cat" in world["en"]
    assert not any(ch.isdigit() and len(e) > 1 for e in world["en"][:5000] for ch in e)  # no folded numbers


def test_real_captions_match_in_chinese_japanese_thai(world_file, laion_records):
    md = load_metadata(world_file)
    wm = WorldwideMatcher(md.languages)
    router = Router(md.languages)
    by_lang = collections.defaultdict(list)
    for r in laion_records:
        by_lang[router.route(r["language"])].append(r["caption"])
    if CLUEWEB.is_file():
        from clipcurate.ingest.archive import read_archive
        by_lang["ja_warc"] = [rec["caption"] for status, rec in read_archive(str(CLUEWEB), "warc")
                              if status == "ok" and router.route(detect_lang(rec["caption"])) == "ja"]
        assert len(by_lang["ja_warc"]) > 100
    for lang in ("zh", "ja", "th", "ja_warc"):
        caps = by_lang[lang]
        meta_lang = "ja" if lang == "ja_warc" else lang
        entries = md.languages[meta_lang]
        matched = [wm.match(c, meta_lang) for c in caps]
        off = wm.offsets[meta_lang]
        # same as the literal definition, and most captions match something in their own script
        for c, m in zip(caps[:40], matched):
            assert [i - off for i in m] == match_reference(c, entries, script_padding=True), c
        # captions holding 2+ characters of an unspaced script: nearly all match an entry of that script
        scripted = [(c, m) for c, m in zip(caps, matched) if sum(map(is_unspaced_letter, c)) >= 2]
        hits = [c for c, m in scripted if any(is_unspaced_letter(md.entries[i][0]) for i in m)]
        assert len(scripted) >= 3 and len(hits) >= 0.9 * len(scripted), (lang, len(hits), len(scripted))
    assert wm.loaded_languages() == ["ja", "th", "zh"]  # lazy: only the languages matched so far
    # hand-checked: a Thai LAION caption (ขวด = bottle) and a Japanese WARC alt text
    th = wm.match("Refresh Extra Care Deodorant Spray 1 ขวด 60 ml", "th")
    assert "ขวด" in {md.entries[i] for i in th}


def is_unspaced_letter(ch):
    return ch.isalpha() and is_unspaced_char(ch)


def detect_lang(text):
    from clipcurate.filters.langid import get_identifier
    return get_identifier("fast").detect(text)[0]


# -- the Beam transform, worldwide --------------------------------------------------------------------

T_EN = 30


def run_curate(records, cfg, seed, stats_dir=None, options=("--runner=FnApiRunner",)):
    """Run MetaClipCurate; return (kept sorted by uid, summed counts, metaclip stats, rejects)."""
    import os
    import tempfile

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from clipcurate.balancing.transforms import MetaClipCurate
    with tempfile.TemporaryDirectory() as tmp:
        with beam.Pipeline(options=PipelineOptions(list(options))) as p:
            res = (p | beam.Create(records, reshuffle=False).with_output_types(dict)
                   | MetaClipCurate(cfg, seed, keep_rejects=True, stats_dir=stats_dir))
            res["counts"] = res["counts"] | beam.CombinePerKey(sum)
            for name in ("kept", "rejects", "stats", "counts"):
                (res[name] | f"Collect{name}" >> beam.combiners.ToList()
                 | f"Json{name}" >> beam.Map(json.dumps, sort_keys=True)
                 | f"Write{name}" >> beam.io.WriteToText(os.path.join(tmp, name), shard_name_template=""))
        out = {name: json.loads(Path(tmp, name).read_text()) for name in ("kept", "rejects", "stats", "counts")}
    counts = {tuple(k): n for k, n in out["counts"]}
    return sorted(out["kept"], key=lambda r: r["uid"]), counts, dict(out["stats"])["metaclip"], out["rejects"]


@pytest.fixture(scope="module")
def world_run(world_file, laion_records, tmp_path_factory):
    stats_dir = str(tmp_path_factory.mktemp("wstats"))
    cfg = BalanceConfig(metadata=world_file, t=T_EN)
    return run_curate(laion_records, cfg, seed=3, stats_dir=stats_dir), stats_dir


def test_worldwide_counts_thresholds_and_draw_against_reference(world_file, laion_records, world_run):
    from clipcurate.balancing.sampling import draw_keep
    (kept, counts, stats, rejects), stats_dir = world_run
    md = load_metadata(world_file)
    offsets = md.offsets()
    wm, router = WorldwideMatcher(md.languages), Router(md.languages)
    # reference: route, match, count per global id (= per (language, entry))
    ref_counts = np.zeros(len(md.entries), dtype=np.int64)
    matched = {}
    for r in laion_records:
        lang = router.route(r["language"])
        m = wm.match(r["caption"], lang) if lang else []
        if m:
            matched[r["uid"]] = m
            ref_counts[m] += 1
    table = pq.read_table(Path(stats_dir) / "metaclip_entry_counts.parquet").to_pydict()
    assert table["count_before"] == ref_counts.tolist()
    assert table["language"][offsets["zh"][0]] == "zh" and len(table["language"]) == len(md.entries)
    probs, thresholds, p = worldwide_probabilities(ref_counts, offsets, T_EN)
    assert stats["tail_proportion"] == pytest.approx(p) and 0 < p < 1
    assert {lang: s["t"] for lang, s in stats["languages"].items() if lang in offsets} == thresholds
    assert thresholds["en"] == T_EN and any(t != T_EN for lang, t in thresholds.items() if lang != "en")
    for lang, t in thresholds.items():  # head/tail summary per language: entries over t_lang, tail share
        c = ref_counts[slice(*_span(offsets[lang]))]
        s = stats["languages"][lang]
        assert s["head_entries"] == int((c > t).sum()), lang
        assert s["tail_share"] == (pytest.approx(c[c < t].sum() / c.sum()) if c.sum() else None), lang
    assert stats["languages"]["en"]["tail_share"] == pytest.approx(p)
    want = sorted(u for u, m in matched.items() if draw_keep(3, u, m, probs))
    assert [r["uid"] for r in kept] == want
    # funnel: every record accounted for, per language and in total
    assert counts[("match", "in")] == len(laion_records)
    assert counts[("match", "kept")] == len(matched) == counts[("balance", "in")]
    assert counts[("balance", "kept")] == len(kept)
    per_lang_in = collections.Counter(router.route(r["language"]) or "-" for r in laion_records)
    for lang, s in stats["languages"].items():
        f = s.get("funnel", {})
        assert sum(n for k, n in f.items() if k.startswith("match:")) == per_lang_in[lang], lang
        assert f.get("match:ok", 0) == sum(f.get(f"balance:{k}", 0) for k in ("ok", "balanced_out")), lang
    assert stats["languages"]["en"]["funnel"]["balance:balanced_out"] > 0
    assert stats["languages"]["ja"]["funnel"]["match:ok"] > 10
    assert stats["languages"]["ja"]["count_curve"]["count"][0] == max(ref_counts[slice(*_span(offsets["ja"]))])


def _span(off):
    return off[0], off[0] + off[1]


def test_worldwide_deterministic_across_workers_and_drop_fallback(world_file, laion_records, world_run):
    (kept, counts, stats, _), _ = world_run
    cfg = BalanceConfig(metadata=world_file, t=T_EN)
    multi = run_curate(laion_records, cfg, seed=3,
                       options=("--runner=FnApiRunner", "--direct_num_workers=2",
                                "--direct_running_mode=multi_processing"))
    assert multi[0] == kept and multi[1] == counts
    assert multi[2]["languages"] == {k: v for k, v in stats["languages"].items()}
    # unknown_language=drop: languages without a list are dropped with a reason, nothing else changes for en
    dropped = run_curate(laion_records, BalanceConfig(metadata=world_file, t=T_EN, unknown_language="drop"), seed=3)
    n_other = stats["languages"]["other"]["funnel"]
    assert dropped[1][("match", "dropped:no_metadata_language")] == sum(n_other.get(k, 0) for k in n_other
                                                                        if k.startswith("match:"))
    assert [r["uid"] for r in dropped[0] if r["language"] == "en"] == [r["uid"] for r in kept if r["language"] == "en"]


def test_filter_languages_auto_follows_metadata(tmp_path, world_file):
    from clipcurate.balancing.worldwide import resolve_filter_languages
    from clipcurate.filters.config import TextFilterConfig
    from clipcurate.filters.text import CaptionFilter
    plain = tmp_path / "plain.json"
    plain.write_text('["cat"]')
    auto = TextFilterConfig()
    assert CaptionFilter(auto).languages == {"en"}  # default stays English-only
    assert resolve_filter_languages(auto, BalanceConfig(metadata=world_file)).languages == []
    assert resolve_filter_languages(auto, BalanceConfig(metadata=str(plain))).languages == ["en"]
    assert resolve_filter_languages(auto, BalanceConfig(metadata=world_file, enabled=False)).languages == ["en"]
    explicit = TextFilterConfig(languages=["ja"])
    assert resolve_filter_languages(explicit, BalanceConfig(metadata=world_file)).languages == ["ja"]


def test_build_metadata_cli_worldwide(tmp_path, capsys):
    pytest.importorskip("pythainlp", reason="pip install 'clipcurate[worldwide]' (scripts/setup.sh installs it)")
    from clipcurate.balancing.cli import main
    ja = tmp_path / "ja.txt"
    ja.write_text("東京タワー\n富士山\n\n", encoding="utf-8")
    out = tmp_path / "w.json"
    assert main(["build-metadata", "--worldwide", "--languages", "th", "--lang-list", f"ja:{ja}",
                 "--output", str(out)]) == 0
    world = json.loads(out.read_text(encoding="utf-8"))
    assert list(world) == ["ja", "th"] and world["ja"] == ["富士山", "東京タワー"] and "แมว" in world["th"]
    stats = json.loads((tmp_path / "w.stats.json").read_text(encoding="utf-8"))
    assert stats["languages"]["ja"]["entries"] == 2 and stats["num_languages"] == 2
    assert main(["build-metadata", "--worldwide", "--languages", "xx", "--output", str(out)]) == 2
    assert "--lang-list xx:FILE" in capsys.readouterr().err


def test_text_filter_counts_unspaced_words_on_japanese_warc():
    from clipcurate.filters.config import TextFilterConfig
    from clipcurate.filters.text import CaptionFilter
    from clipcurate.ingest.archive import read_archive
    caps = [r["caption"] for s, r in read_archive(str(CLUEWEB), "warc") if s == "ok"]
    anyl = collections.Counter(CaptionFilter(TextFilterConfig(languages=[])).check(c)[:2] for c in caps)
    en = collections.Counter(CaptionFilter(TextFilterConfig()).check(c)[:2] for c in caps)
    # with every language allowed, Japanese alt texts without spaces are no longer "too_short"
    assert anyl[("ok", "ja")] > 200 > 2 * en[("lang", "ja")] and en[("lang", "ja")] == 92
    assert CaptionFilter(TextFilterConfig(languages=[])).check("新しくアップされたアイテム")[:2] == ("ok", "ja")
    # English-only runs are unchanged: one unspaced token is still one word
    assert CaptionFilter(TextFilterConfig()).check("新しくアップされたアイテム")[0] == "too_short"


def test_cli_run_with_worldwide_metadata(tmp_path, world_file):
    """`run --metadata worldwide.json --until balance` on real LAION rows and the Japanese WARC."""
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "out"
    cmd = [sys.executable, str(root / "beam_runner.py"), "run",
           "--input", str(DATA / "img2dataset-tests" / "test_1000.parquet"), "--input", str(CLUEWEB),
           "--metadata", world_file, "--set", "balance.t=5", "--until", "balance", "--output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert "lang" not in manifest["stages"]["filter"]["dropped"]  # auto: every language kept
    assert all(c["balanced"] for c in manifest["stages"].values())
    langs = manifest["stats"]["metaclip"]["languages"]
    # the WARC repeats its images: dedupe_url keeps one row per URL, leaving ~14 Japanese captions
    assert langs["ja"]["funnel"]["match:ok"] >= 10 and langs["en"]["t"] == 5
    assert sum(s.get("funnel", {}).get("balance:ok", 0) for s in langs.values()) == \
        manifest["stages"]["balance"]["kept"]
    rows = [r for f in (out / "until_balance").glob("*.parquet") for r in pq.read_table(f).to_pylist()]
    assert len(rows) == manifest["stages"]["balance"]["kept"]
    assert any(r["language"] == "ja" for r in rows) and any(r["language"] == "en" for r in rows)
    # the report: head/tail table per language from the manifest, entry-count plot per language
    import html.parser

    from PIL import Image

    from clipcurate.sinks.report import write_report
    page = Path(write_report(str(out))).read_text(encoding="utf-8")
    cells = {}

    class Cells(html.parser.HTMLParser):
        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            self.key = (a["data-htlang"], a["data-key"]) if "data-htlang" in a else None

        def handle_endtag(self, tag):
            self.key = None

        def handle_data(self, data):
            if getattr(self, "key", None):
                cells[self.key], self.key = data, None
    Cells().feed(page)
    counts = pq.read_table(out / "stats" / "metaclip_entry_counts.parquet").to_pydict()
    for lang, s in langs.items():
        if "t" not in s:
            continue
        c = np.array([n for n, lg in zip(counts["count_before"], counts["language"]) if lg == lang])
        assert cells[(lang, "t")] == str(s["t"]) and cells[(lang, "entries_over_t")] == str(int((c > s["t"]).sum()))
        assert cells.get((lang, "tail_share"), "") == (f"{c[c < s['t']].sum() / c.sum():.3f}" if c.sum() else "")
    with Image.open(out / "report_files" / "entry_counts_language.png") as im:
        assert im.format == "PNG" and im.width > 300
    assert 'id="plot-entry_counts_language"' in page


# -- one alt text per image URL: seeded draw (MetaCLIP 2), dedupe.url_keep ---------------------

def _ref_draw(seed: int, uid: str) -> int:
    """Reference for the ``random`` keep rule, written from the docs: blake2b-64 of seed, uid, purpose."""
    import hashlib
    return int.from_bytes(hashlib.blake2b(f"{seed}\x00{uid}\x00dedupe_url".encode(), digest_size=8).digest(), "big")


def _alt_text_groups():
    """Real alt texts sharing an image URL: the 4 multi-caption URLs of the WARC files and LAION, the
    Japanese ClueWeb WARC (its pages repeat 19 images 556 times with the same alt text) and 600 LAION
    captions put 3 by 3 on one image URL (a page repeating an image under several alt texts)."""
    from clipcurate.ingest.archive import read_archive
    recs = []
    for path in (DATA / "resiliparse-warc" / "warcfile.warc.gz", CLUEWEB,
                 DATA / "eugeneware-warc-wat" / "CC-MAIN-20140820021334-00006-ip-10-180-136-8.ec2.internal.warc"):
        recs += [{"uid": r["uid"], "url": r["url"], "caption": r["caption"]} for s, r in read_archive(str(path), "warc")
                 if s == "ok"]
    rows = pq.read_table(LAION, columns=["URL", "TEXT"]).to_pylist()
    recs += [{"uid": make_uid(r["URL"], r["TEXT"]), "url": r["URL"], "caption": r["TEXT"]} for r in rows[600:]]
    for i, r in enumerate(rows[:600]):
        url = rows[i - i % 3]["URL"]
        recs.append({"uid": make_uid(url, r["TEXT"]), "url": url, "caption": r["TEXT"]})
    return recs


def run_url_dedupe(records, keep, seed, options=("--runner=FnApiRunner",)):
    """Run ExactUrlDedupe; return (kept uids sorted, {uid: (reason, duplicate_of)} of rejects, summed counts)."""
    import os
    import tempfile

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from clipcurate.dedupe import ExactUrlDedupe
    with tempfile.TemporaryDirectory() as tmp:
        with beam.Pipeline(options=PipelineOptions(list(options))) as p:
            res = (p | beam.Create(records, reshuffle=False).with_output_types(dict)
                   | ExactUrlDedupe(keep_rejects=True, keep=keep, seed=seed))
            res["counts"] = res["counts"] | beam.CombinePerKey(sum)
            for name in ("kept", "rejects", "counts"):
                (res[name] | f"List{name}" >> beam.combiners.ToList()
                 | f"Json{name}" >> beam.Map(json.dumps, sort_keys=True)
                 | f"Write{name}" >> beam.io.WriteToText(os.path.join(tmp, name), shard_name_template=""))
        out = {name: json.loads(Path(tmp, name).read_text()) for name in ("kept", "rejects", "counts")}
    kept = sorted(r["uid"] for r in out["kept"])
    rejects = {r["uid"]: (r["reason"], r["duplicate_of"]) for r in out["rejects"]}
    return kept, rejects, {key: n for (_, key), n in out["counts"]}


def test_one_alt_text_per_image_url_is_a_seeded_draw():
    from clipcurate.dedupe.config import DedupeConfig
    from clipcurate.dedupe.keep import choose
    from clipcurate.schemas.uid import normalize_url
    assert DedupeConfig().url_keep == "random"
    with pytest.raises(ValueError, match="smallest_uid"):
        DedupeConfig(url_keep="first")
    with pytest.raises(ValueError, match="random"):
        choose([("a", None)], rule="first")
    recs = _alt_text_groups()
    groups = collections.defaultdict(set)
    for r in recs:
        groups[normalize_url(r["url"])].add(r["uid"])
    multi = {u: g for u, g in groups.items() if len(g) > 1}
    assert len(multi) == 200 + 4 and len(recs) == 556 + 32 + 861 + 10000
    picks = {}
    for seed in (1, 2):
        kept, rejects, counts = run_url_dedupe(recs, "random", seed)
        # counts as data: in = kept + dup_url; one record per URL (identical repeats included)
        assert counts == {"in": len(recs), "kept": len(groups), "dropped:dup_url": len(recs) - len(groups)}
        want = sorted(min(g, key=lambda u: (_ref_draw(seed, u), u)) for g in groups.values())
        assert kept == want
        keeper = {u: min(g, key=lambda x: (_ref_draw(seed, x), x)) for u, g in groups.items()}
        by_uid = {r["uid"]: normalize_url(r["url"]) for r in recs}
        assert all(reason == "dup_url" and dup == keeper[by_uid[uid]] for uid, (reason, dup) in rejects.items())
        picks[seed] = {u: keeper[u] for u in multi}
        if seed == 1:
            kept_1, rejects_1 = kept, rejects
    # another seed draws again: about 2/3 of the 3-caption groups change their caption
    changed = sum(picks[1][u] != picks[2][u] for u in multi if len(multi[u]) == 3)
    assert 100 < changed < 167, changed
    # each position of a group is equally likely (200 groups of 3: ~67 each)
    order = {r["uid"]: i % 3 for i, r in enumerate(recs[-600:])}
    positions = collections.Counter(order[picks[1][u]] for u in multi if len(multi[u]) == 3)
    assert all(45 < positions[i] < 90 for i in range(3)), positions
    # the real WARC / LAION pairs (e.g. "photo No. 725" / "Previous"): one caption of two survives
    assert all(len(g & set(kept)) == 1 for g in multi.values())
    # same seed, reversed input, 2 worker processes: the same choice
    again = run_url_dedupe(list(reversed(recs)), "random", 1, options=(
        "--runner=FnApiRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"))
    assert again[0] == kept_1 and again[1] == rejects_1
    # smallest_uid (the previous rule) ignores the seed
    s1, s2 = run_url_dedupe(recs, "smallest_uid", 1)[0], run_url_dedupe(recs, "smallest_uid", 2)[0]
    assert s1 == s2 == sorted(min(g) for g in groups.values())


# -- corpus n-grams per language: word segmenters for unspaced scripts ------------------------

def _segmenter(lang):
    for mod in ("jieba", "janome", "pythainlp"):
        pytest.importorskip(mod, reason="pip install 'clipcurate[worldwide]' (scripts/setup.sh installs it)")
    from clipcurate.balancing.segmenters import make_segmenter
    return make_segmenter(lang)


def _events(text, lang):
    from clipcurate.balancing.metadata import ngram_events
    ev = list(ngram_events(text, _segmenter(lang)))
    return [v for k, v in ev if k == "u"], [v for k, v in ev if k == "b"]


def test_segmenters_cut_hand_checked_cjk_and_thai_captions():
    from clipcurate.balancing.metadata import tokenize
    from clipcurate.balancing.segmenters import make_segmenter
    # Chinese (jieba): "I like the night view of Tokyo Tower." + "New York is big"
    uni, bi = _events("我喜欢东京塔的夜景。New York 很大", "zh")
    assert uni == ["我", "喜欢", "东京", "塔", "的", "夜景", "New", "York", "很大"]
    assert ("东京", "塔", "") in bi and ("New", "York", " ") in bi
    assert not any(b[0] == "夜景" for b in bi)  # "。" breaks bigrams
    # Japanese (Janome): "The night view of Tokyo Tower is beautiful." + "iPhone case"
    uni, bi = _events("東京タワーの夜景がきれいです。iPhoneケース", "ja")
    assert uni == ["東京", "タワー", "の", "夜景", "が", "きれい", "です", "iPhone", "ケース"]
    assert ("東京", "タワー", "") in bi and ("iPhone", "ケース", "") in bi
    # Thai (PyThaiNLP newmm): "the cat is very cute", "yes"
    uni, bi = _events("แมวน่ารักมาก ใช่", "th")
    assert uni == ["แมว", "น่ารัก", "มาก", "ใช่"] and bi == [("แมว", "น่ารัก", ""), ("น่ารัก", "มาก", ""),
                                                            ("มาก", "ใช่", " ")]
    # spaced languages keep whitespace tokens; combining marks (Thai tone marks, Devanagari signs) are word letters
    assert make_segmenter("en") is None and make_segmenter(None) is None
    assert tokenize("แมว น่ารัก हिन्दी भाषा") == ["แมว", "น่ารัก", "हिन्दी", "भाषा"]
    # entries built from segmented bigrams match where they occurred (MetaCLIP 2 padding rule)
    m = Matcher(["东京塔", "東京タワー", "แมวน่ารัก", "New York"], script_padding=True)
    assert m.match("我喜欢东京塔的夜景。") == [0] and m.match("東京タワーの夜景") == [1]
    assert m.match("แมวน่ารักมาก") == [2] and m.match("I love New York.") == [3]


def test_corpus_ngrams_per_language_on_the_japanese_warc(tmp_path):
    """`build-metadata --worldwide --lang-corpus ja:...` on the ClueWeb WARC's Japanese alt texts (556 lines):
    the Beam builder's ja unigrams/bigrams equal a plain count over the same segmenter, and hold
    hand-checked words that whitespace tokens miss."""
    from clipcurate.balancing.cli import main
    from clipcurate.balancing.metadata import ngram_events, pmi
    from clipcurate.ingest.archive import read_archive
    seg = _segmenter("ja")
    texts = [r["caption"] for s, r in read_archive(str(CLUEWEB), "warc") if s == "ok"]
    corpus = tmp_path / "alt_ja.txt"
    corpus.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "w.json"
    assert main(["build-metadata", "--worldwide", "--languages", "th", "--lang-corpus", f"ja:{corpus}",
                 "--min-count", "20", "--min-pmi", "5", "--min-bigram-count", "20", "--output", str(out)]) == 0
    world = json.loads(out.read_text(encoding="utf-8"))
    assert sorted(world) == ["ja", "th"] and "แมว" in world["th"]
    # reference: plain counts over the same segmenter
    uni, bi = collections.Counter(), collections.Counter()
    for t in texts:
        for kind, v in ngram_events(t, seg):
            (uni if kind == "u" else bi)[v] += 1
    n = sum(uni.values())
    want_uni = {w for w, c in uni.items() if c >= 20}
    want_bi = {f"{a}{s}{b}" for (a, b, s), c in bi.items() if c >= 20 and pmi(c, uni[a], uni[b], n) >= 5}
    assert set(world["ja"]) == want_uni | want_bi and len(want_bi) > 20
    # hand-checked: wallet, Harajuku; Ura-Harajuku, the Yoshida Kaban brand, "QR code", "online shop"
    assert {"財布", "原宿", "人気"} <= want_uni and {"裏原宿", "吉田カバン", "QRコード", "ネットショップ"} <= want_bi
    # whitespace tokens (MetaCLIP 1's rule) would take a whole phrase as one word
    assert "新しくアップされたアイテム" in {v for t in texts for k, v in ngram_events(t) if k == "u"}
    assert "新しくアップされたアイテム" not in world["ja"]
    stats = json.loads((tmp_path / "w.stats.json").read_text(encoding="utf-8"))
    assert stats["languages"]["ja"]["corpus"]["tokens"] == n and stats["versions"]["janome"]
    # the new entries match the WARC's captions in the worldwide matcher
    wm = WorldwideMatcher(world)
    hit = {world["ja"][i - wm.offsets["ja"]] for i in wm.match("裏原宿系アイテム通販", "ja")}
    assert "裏原宿" in hit
