"""Ingest on the real files in ../shared/data: counts and pairs checked against the files
themselves (pyarrow, and an independent warcio + stdlib html.parser reference)."""
import collections
import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to
from warcio.archiveiterator import ArchiveIterator

from clipcurate.ingest import Ingest, IngestConfig, detect_format, input_files, read_file
from clipcurate.schemas.status import is_known
from clipcurate.schemas.uid import make_uid
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
LAION = DATA / "img2dataset-tests" / "test_10000.parquet"
CC_WARC = DATA / "resiliparse-warc" / "warcfile.warc.gz"
CLUEWEB = DATA / "resiliparse-warc" / "clueweb-quirk.warc.gz"
EUG = DATA / "eugeneware-warc-wat" / "CC-MAIN-20140820021334-00006-ip-10-180-136-8.ec2.internal.warc"
EUG_WAT = Path(str(EUG) + ".wat")
WHIRL = DATA / "commoncrawl-whirlwind"


def _read(path, **kw):
    pairs = list(read_file(str(path), IngestConfig(**kw)))
    assert all(is_known(s) for s, _ in pairs)
    return pairs


def _counts(pairs):
    return collections.Counter(s for s, _ in pairs)


def _ok(pairs):
    return [r for s, r in pairs if s == "ok"]


# -- independent reference for WARC files: warcio + stdlib html.parser ------------------
class _Imgs(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.tags.append(dict(attrs))


def _reference(path):
    """Per HTML response: (target uri, [attrs of each <img>]); bytes decoded as latin-1,
    which keeps tag structure of any ASCII-compatible charset."""
    pages = []
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            ctype = rec.http_headers.get_header("Content-Type") if rec.http_headers else None
            if rec.rec_type != "response" or not (ctype or "").startswith("text/html"):
                continue
            parser = _Imgs()
            parser.feed(rec.content_stream().read().decode("latin-1"))
            pages.append((rec.rec_headers.get_header("WARC-Target-URI"), parser.tags))
    return pages


def _ref_src(attrs):
    src = (attrs.get("src") or "").strip()
    return src or ((attrs.get("srcset") or "").strip().split(",")[0].split() or [""])[0]


@pytest.mark.parametrize("path", [CC_WARC, CLUEWEB, EUG], ids=["cc2020", "clueweb", "eugeneware"])
def test_warc_counts_match_independent_reference(path):
    pages = _reference(path)
    tags = [t for _, ts in pages for t in ts]
    with_src_alt = [t for t in tags if _ref_src(t) and (t.get("alt") or "").strip()]
    pairs = _read(path)
    c = _counts(pairs)
    assert sum(c.values()) == len(tags)
    assert c["missing_url"] == sum(1 for t in tags if not _ref_src(t))
    assert c["ok"] + c["data_uri"] + c["bad_url"] + c["bad_encoding"] == len(with_src_alt)
    # resolved URLs agree with urljoin against the page URL (no <base> in these files)
    expected = collections.Counter(urljoin(uri, _ref_src(t)).replace(" ", "%20") for uri, ts in pages
                                   for t in ts if _ref_src(t) and (t.get("alt") or "").strip()
                                   and _ref_src(t)[:5] != "data:")
    assert collections.Counter(r["url"] for r in _ok(pairs)) == expected


def test_cc_warc_real_counts_and_pairs():
    pairs = _read(CC_WARC)
    assert dict(_counts(pairs)) == {"ok": 32, "empty_alt": 117, "missing_url": 4}
    ok = {(r["url"], r["caption"]): r for r in _ok(pairs)}
    # windows-1251 page (charset in the HTTP header), relative src resolved against the page
    rec = ok[("http://01spb.ru/logo.png", "Стратегия пожарной безопасности")]
    assert rec["offset"] == 12685 and rec["source_format"] == "warc"
    assert json.loads(rec["extra"]) == {"page_url": "http://01spb.ru/company/"}
    assert rec["uid"] == make_uid(rec["url"], rec["caption"])
    # gb2312 page decoded as gb18030; German page without charset falls back to cp1252
    assert ("http://img3.jxtdw.com/logo200/0760_logo.gif", "中山英才网") in ok
    assert ("http://06.live-radsport.ch/images/meneu_header.jpg",
            "Tour de France Live, Resultate, Etappen, Startliste Liveticker") in ok
    assert all("\ufffd" not in r["caption"] for r in ok.values())


def test_clueweb_quirk_japanese_alt_decoded():
    pairs = _read(CLUEWEB)
    assert dict(_counts(pairs)) == {"ok": 556, "empty_alt": 696}
    ok = _ok(pairs)
    japanese = [r for r in ok if any("\u3040" <= ch <= "\u30ff" for ch in r["caption"])]
    assert len(japanese) > 100
    assert all("\ufffd" not in r["caption"] for r in ok)
    first = ok[0]
    assert first["url"] == "http://www.uraharajuku.st/design/porter/index-image/header-1.jpg"
    assert first["caption"].startswith("ヘッドポータ")  # EUC-JP page (WARC/0.18)
    # the first response (byte 317), decoded independently with its declared EUC-JP, holds it
    assert first["offset"] == 317
    with open(CLUEWEB, "rb") as f:
        rec = next(r for r in ArchiveIterator(f) if r.rec_type == "response")
        assert rec.http_headers.get_header("Content-Type") == "text/html; charset=EUC-JP"
        page = rec.content_stream().read().decode("euc_jp")
    assert f'alt="{first["caption"][:6]}' in page


def test_plain_warc_relative_gallery_urls():
    pairs = _read(EUG)
    assert dict(_counts(pairs)) == {"ok": 861}
    ok = {(r["url"], r["caption"]) for r in _ok(pairs)}
    assert ("http://0pointer.de/photos/galleries/Australia/lq/img-496.jpg", "496") in ok
    assert ("http://0pointer.de/photos/galleries/Thailand%202011-01/thumbs/img-1.jpg", "photo No. 1") in ok


def test_wat_img_links_resolved_against_target_uri():
    pairs = _read(EUG_WAT)
    assert detect_format(str(EUG_WAT)) == "wat"
    got = [(s, r["url"], r["caption"], r["source_format"]) for s, r in pairs]
    assert got == [
        ("ok", "http://0pointer.de/photos/galleries/Australia/lq/img-496.jpg", "496", "wat"),
        ("ok", "http://0pointer.de/photos/galleries/Australia/thumbs/img-495.jpg", "Previous", "wat"),
        ("ok", "http://0pointer.de/photos/galleries/Australia/thumbs/img-497.jpg", "Next", "wat"),
        ("ok", "http://creativecommons.org/images/public/somerights20.png", "Creative Commons License", "wat"),
    ]
    assert json.loads(pairs[0][1]["extra"])["page_url"] == "http://0pointer.de/photos/?gallery=Australia&photo=496"
    # the WAT's own IMG@/src entries, read independently
    with open(EUG_WAT, "rb") as f:
        links = [link for r in ArchiveIterator(f) if r.rec_type == "metadata"
                 for link in (json.loads(r.content_stream().read())["Envelope"].get("Payload-Metadata", {})
                              .get("HTTP-Response-Metadata", {}).get("HTML-Metadata", {}).get("Links", []))
                 if link.get("path") == "IMG@/src"]
    assert [link["alt"] for link in links] == [c for _, _, c, _ in got]


def test_whirlwind_gz_wat_has_no_images_and_warc_has_seven():
    assert _read(WHIRL / "whirlwind.warc.wat.gz") == []
    pairs = _read(WHIRL / "whirlwind.warc.gz")
    assert dict(_counts(pairs)) == {"ok": 7, "empty_alt": 6}
    ok = {(r["url"], r["caption"]) for r in _ok(pairs)}
    assert ("https://an.wikipedia.org/static/images/mobile/copyright/wikipedia-wordmark-an.svg",
            "Biquipedia") in ok  # site-relative src
    assert any(u.startswith("https://upload.wikimedia.org/") and c == "Escudo d'armas"
               for u, c in ok)  # protocol-relative src takes the page's https


def test_laion_parquet_url_text_autodetected():
    pairs = _read(LAION)
    table = pq.read_table(LAION)
    assert len(pairs) == table.num_rows == 10_000
    assert _counts(pairs) == {"ok": 10_000}
    urls, texts = table.column("URL").to_pylist(), table.column("TEXT").to_pylist()
    for i in (0, 4321, 9999):
        rec = pairs[i][1]
        assert (rec["url"], rec["caption"], rec["offset"]) == (urls[i].strip(), texts[i].strip(), i)
        assert rec["source_format"] == "parquet" and rec["source"] == str(LAION)
    assert len({r["uid"] for _, r in pairs}) == len(set(zip(urls, texts)))


def test_parquet_extra_columns_and_explicit_names():
    pairs = _read(DATA / "img2dataset-tests" / "test_1000.parquet", url_col="URL", caption_col="TEXT",
                  extra_cols=["__index_level_0__"])
    idx = pq.read_table(DATA / "img2dataset-tests" / "test_1000.parquet").column("__index_level_0__").to_pylist()
    assert [json.loads(r["extra"])["__index_level_0__"] for _, r in pairs] == idx


def test_input_files_manifest_entries():
    import hashlib
    files = input_files(IngestConfig(inputs=[str(DATA / "resiliparse-warc" / "*.warc.gz"), str(EUG_WAT)]))
    by_source = {p.name: p for p in (CLUEWEB, CC_WARC, EUG_WAT)}
    assert [f["source"] for f in files] == sorted(by_source)  # relative to the glob's fixed prefix
    for f in files:
        data = by_source[f["source"]].read_bytes()
        assert f["bytes"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest()
        assert f["status"] == "ok" and "error" not in f
    rows = {f["source"]: f["rows"] for f in files}  # the counts tabled in docs/ingest.md
    assert rows == {CLUEWEB.name: 1252, CC_WARC.name: 153, EUG_WAT.name: 4}


def test_beam_ingest_over_a_glob_counts_add_up():
    cfg = IngestConfig(inputs=[str(DATA / "resiliparse-warc" / "*.warc.gz"), str(EUG_WAT),
                               str(DATA / "img2dataset-tests" / "test_1000.parquet")])
    expected = collections.Counter()
    for path in Ingest(cfg).files:
        expected.update(s for s, _ in read_file(path, cfg))
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        out = p | Ingest(cfg, keep_rejects=True)
        counts = out["counts"] | beam.CombinePerKey(sum)
        kept_n = out["kept"] | "CountKept" >> beam.combiners.Count.Globally()
        reasons = out["rejects"] | beam.Map(lambda r: (r["stage"], r["reason"])) | beam.combiners.Count.PerElement()
        n_in = sum(expected.values())
        want = [(("ingest", "in"), n_in), (("ingest", "kept"), expected["ok"])] + [
            (("ingest", f"dropped:{s}"), n) for s, n in expected.items() if s != "ok"] + [
            (("ingest", "files_in"), 4), (("ingest", "files_ok"), 4)]
        assert_that(counts, equal_to(want), label="counts")
        assert_that(kept_n, equal_to([expected["ok"]]), label="kept")
        assert_that(reasons, equal_to([(("ingest", s), n) for s, n in expected.items() if s != "ok"]),
                    label="rejects")
    assert n_in == expected["ok"] + sum(n for s, n in expected.items() if s != "ok")
    assert expected["ok"] == 32 + 556 + 4 + 1000


def test_glob_matching_nothing_is_an_error_at_construction(tmp_path):
    with pytest.raises(ValueError, match=r"nothing-here/\*\.parquet.*matches no file"):
        Ingest(IngestConfig(inputs=[str(tmp_path / "nothing-here" / "*.parquet")]))
    with pytest.raises(ValueError, match="no inputs"):
        Ingest(IngestConfig(inputs=[]))
