"""Ingest on bad and odd input written into tmp_path: truncated archives and gzip streams,
malformed rows, non-UTF-8 bytes, missing columns, headerless TSV, <base href>, data: URIs."""
import collections
import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from clipcurate.ingest import IngestConfig, detect_format, read_file
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
CC_WARC = DATA / "resiliparse-warc" / "warcfile.warc.gz"
EUG = DATA / "eugeneware-warc-wat" / "CC-MAIN-20140820021334-00006-ip-10-180-136-8.ec2.internal.warc"


def _read(path, **kw):
    return list(read_file(str(path), IngestConfig(**kw)))


def _statuses(pairs):
    return [s for s, _ in pairs]


# -- truncated archives ---------------------------------------------------------------
def test_truncated_warc_gz_counts_one_truncated_record_and_stops(tmp_path):
    full = _read(CC_WARC)
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(CC_WARC.read_bytes()[:50_000])  # inside the response record at byte 48321
    pairs = _read(cut)
    assert _statuses(pairs)[-1] == "truncated_record"
    assert collections.Counter(_statuses(pairs))["truncated_record"] == 1
    last = pairs[-1][1]
    assert last["offset"] == 48321 and str(cut) in last["error"]
    before = [(s, r["url"], r["caption"]) for s, r in full if r["offset"] < 48321]
    assert [(s, r["url"], r["caption"]) for s, r in pairs[:-1]] == before
    assert len(before) > 0


def test_truncated_plain_warc(tmp_path):
    cut = tmp_path / "cut.warc"
    cut.write_bytes(EUG.read_bytes()[:20_000])  # inside the 222 KB gallery page at byte 12786
    pairs = _read(cut)
    before = [(s, r["url"]) for s, r in _read(EUG) if r["offset"] < 12786]
    assert [(s, r["url"]) for s, r in pairs[:-1]] == before and len(before) == 4  # Australia page
    assert _statuses(pairs)[-1] == "truncated_record" and pairs[-1][1]["offset"] == 12786


def test_single_stream_gzip_warc_reads_like_the_plain_file(tmp_path):
    """`gzip file.warc` gives one gzip stream, not one member per record (warcio refuses it)."""
    path = tmp_path / "whole.warc.gz"
    path.write_bytes(gzip.compress(EUG.read_bytes()))
    plain = [(s, r["url"], r["caption"], r["offset"]) for s, r in _read(EUG)]
    assert [(s, r["url"], r["caption"], r["offset"]) for s, r in _read(path)] == plain


def test_not_an_archive_is_a_clear_error(tmp_path):
    bad = tmp_path / "junk.warc.gz"
    bad.write_bytes(gzip.compress(b"this is not a WARC file\n" * 10))
    with pytest.raises(ValueError, match="junk.warc.gz: not a readable WARC"):
        _read(bad)


# -- synthetic WARC: base href, data: URIs, bad URLs, srcset, charsets ---------------------
def _warc(path, pages):
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=str(path).endswith(".gz"))
        for uri, ctype, body in pages:
            headers = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(uri, "response", payload=io.BytesIO(body),
                                                          http_headers=headers))


def test_base_href_data_uri_bad_url_srcset(tmp_path):
    html = ('<html><head><base href="/static/v2/"></head><body>'
            '<img src="a.jpg" alt="  a   cat\n on a mat ">'
            '<img src="data:image/png;base64,iVBORw0KGgo=" alt="inline">'
            '<img src="javascript:void(0)" alt="js">'
            '<img srcset="b-small.jpg 1x, b-big.jpg 2x" alt="from srcset">'
            '<img src="//cdn.example.org/c.png" alt="protocol relative">'
            '<img src="d.jpg" alt="">'
            '<img alt="no src"></body></html>').encode()
    path = tmp_path / "page.warc.gz"
    _warc(path, [("https://example.com/dir/page.html", "text/html", html)])
    got = [(s, r["url"], r["caption"]) for s, r in _read(path)]
    assert got == [
        ("ok", "https://example.com/static/v2/a.jpg", "a cat on a mat"),
        ("data_uri", "data:image/png;base64,iVBORw0KGgo=", "inline"),
        ("bad_url", "javascript:void(0)", "js"),
        ("ok", "https://example.com/static/v2/b-small.jpg", "from srcset"),
        ("ok", "https://cdn.example.org/c.png", "protocol relative"),
        ("empty_alt", "d.jpg", ""),
        ("missing_url", "", "no src"),
    ]


def test_charset_from_meta_and_lossy_pages(tmp_path):
    latin = '<meta charset="iso-8859-1"><img src="/x.jpg" alt="café crème">'.encode("latin-1")
    sjis = ('<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'
            '<img src="/y.jpg" alt="日本の猫">').encode("shift_jis")
    # declared utf-8, but one alt holds a stray latin-1 byte: nothing decodes strictly
    broken = b'<meta charset="utf-8"><img src="/z.jpg" alt="ok \xe6\x97\xa5"><img src="/w.jpg" alt="bad \xe9 byte">'
    path = tmp_path / "pages.warc"
    _warc(path, [("http://a.example/", "text/html", latin), ("http://b.example/", "text/html", sjis),
                 ("http://c.example/", "text/html; charset=utf-8", broken)])
    got = [(s, r["url"], r["caption"]) for s, r in _read(path)]
    assert got[0] == ("ok", "http://a.example/x.jpg", "café crème")
    assert got[1] == ("ok", "http://b.example/y.jpg", "日本の猫")
    assert got[2] == ("ok", "http://c.example/z.jpg", "ok 日")
    assert got[3][0] == "bad_encoding" and got[3][1] == "http://c.example/w.jpg"


# -- CSV / TSV --------------------------------------------------------------------------
def test_csv_malformed_row_bad_bytes_nul_and_extras(tmp_path):
    path = tmp_path / "cands.csv"
    path.write_bytes(
        b"\xef\xbb\xbfurl,caption,license\n"                       # BOM before the header
        b'http://e.com/1.jpg,"a dog, running",cc-by\n'            # quoted comma
        b"http://e.com/2.jpg,too,many,fields\n"                   # malformed
        b"http://e.com/3.jpg,caf\xe9 latin-1 byte,cc0\n"          # not UTF-8
        b"http://e.com/4.jpg,  ,cc0\n"                            # empty caption
        b",no url,cc0\n"                                          # empty url
        b"\n"                                                     # blank line: skipped
        b"http://e.com/5.jpg,nul\x00 inside,cc0\n")
    pairs = _read(path, extra_cols=["license"])
    assert _statuses(pairs) == ["ok", "malformed_row", "bad_encoding", "missing_caption", "missing_url", "ok"]
    assert [r["offset"] for _, r in pairs] == [0, 1, 2, 3, 4, 5]
    assert pairs[0][1]["caption"] == "a dog, running"
    assert json.loads(pairs[0][1]["extra"]) == {"license": "cc-by"}
    assert "line 3" in pairs[1][1]["error"] and "expected 3 fields, got 4" in pairs[1][1]["error"]
    assert pairs[2][1]["caption"] == "caf\ufffd latin-1 byte"
    assert pairs[5][1]["caption"] == "nul inside"


def test_csv_declared_encoding(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("url,caption\nhttp://e.com/1.jpg,café\n".encode("latin-1"))
    assert [(s, r["caption"]) for s, r in _read(path, encoding="latin-1")] == [("ok", "café")]


def test_missing_column_error_names_file_and_columns(tmp_path):
    path = tmp_path / "cands.csv"
    path.write_text("link,caption\nhttp://e.com/1.jpg,a cat\n")
    with pytest.raises(ValueError) as err:
        _read(path, url_col="image_link")
    msg = str(err.value)
    assert str(path) in msg and "image_link" in msg and "['link', 'caption']" in msg
    pq.write_table(pa.table({"URL": ["http://e.com/1.jpg"], "TEXT": ["x"]}), tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"t\.parquet: no extra column 'license'.*\['URL', 'TEXT'\]"):
        _read(tmp_path / "t.parquet", extra_cols=["license"])


def test_headerless_tsv_gz_with_columns(tmp_path):
    """CC3M-style: caption<TAB>url, no header, quotes are literal."""
    rows = ['a "quoted" word in a caption\thttp://e.com/1.jpg', "the sky at night\thttp://e.com/2.jpg",
            "only one field"]
    path = tmp_path / "cc3m.tsv.gz"
    path.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    assert detect_format(str(path)) == "tsv"
    pairs = _read(path, columns=["caption", "url"])
    assert [(s, r["url"], r["caption"]) for s, r in pairs[:2]] == [
        ("ok", "http://e.com/1.jpg", 'a "quoted" word in a caption'),
        ("ok", "http://e.com/2.jpg", "the sky at night")]
    assert pairs[2][0] == "malformed_row" and pairs[0][1]["source_format"] == "tsv"


def test_truncated_csv_gz(tmp_path):
    body = "url,caption\n" + "".join(f"http://e.com/{i}.jpg,caption number {i}\n" for i in range(5000))
    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress(body.encode())[:-200])
    pairs = _read(path)
    assert _statuses(pairs)[-1] == "truncated_record" and str(path) in pairs[-1][1]["error"]
    assert set(_statuses(pairs)[:-1]) == {"ok"} and 1000 < len(pairs) <= 5001


# -- JSONL / JSON ------------------------------------------------------------------------
def test_jsonl_bad_lines_and_extras(tmp_path):
    lines = [json.dumps({"URL": "http://e.com/1.jpg", "TEXT": "first", "w": 640}),
             '{"URL": "http://e.com/2.jpg", "TEXT": broken json}',
             "[1, 2, 3]",
             "",
             json.dumps({"URL": "http://e.com/3.jpg", "w": 10}),
             json.dumps({"URL": "http://e.com/4.jpg", "TEXT": 12345, "w": None})]
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    pairs = _read(path, extra_cols=["w"])
    assert _statuses(pairs) == ["ok", "malformed_row", "malformed_row", "missing_caption", "ok"]
    assert json.loads(pairs[0][1]["extra"]) == {"w": 640}
    assert pairs[4][1]["caption"] == "12345" and "bad JSON" in pairs[1][1]["error"]


def test_json_array_and_missing_key_error(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps([{"url": "http://e.com/1.jpg", "caption": "one"}, "junk"]))
    assert _statuses(_read(path)) == ["ok", "malformed_row"]
    path2 = tmp_path / "d.jsonl"
    path2.write_text(json.dumps({"href": "http://e.com/1.jpg", "caption": "one"}) + "\n")
    with pytest.raises(ValueError, match=r"d\.jsonl row 0: no url column 'url'.*\['href', 'caption'\]"):
        _read(path2)


# -- format detection ------------------------------------------------------------------
def test_format_sniffed_from_content_and_errors(tmp_path):
    pq.write_table(pa.table({"url": ["http://e.com/1.jpg"], "caption": ["x"]}), tmp_path / "cands.data")
    assert detect_format(str(tmp_path / "cands.data")) == "parquet"
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="notes.txt: cannot tell the input format"):
        detect_format(str(tmp_path / "notes.txt"))
    with pytest.raises(ValueError, match="input_format='xml' is not one of"):
        detect_format("a.csv", "xml")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match="broken.parquet: not a readable Parquet file"):
        _read(tmp_path / "broken.parquet")
