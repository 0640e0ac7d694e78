"""Nested JSON input: column paths (``meta.url``, ``texts[0]``, ``images[*].src``), the mmc4
document format, and lists or objects where text must be (a counted malformed_row naming
the column, never a repr string).  The documents are built from real pages, image URLs and
alt texts (the Common Crawl WARC and the LAION pairs in ../shared/data), in mmc4's schema
(github.com/allenai/mmc4: url, text_list, image_info[{image_name, raw_url,
matched_text_index, matched_sim, face_detections}], similarity_matrix,
could_have_url_duplicate); only the similarity numbers are made up."""
from __future__ import annotations

import collections
import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipcurate.ingest import IngestConfig, InputRead, read_file
from clipcurate.testing.shared_data import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
DATA = SHARED_DATA
LAION = DATA / "img2dataset-tests" / "test_1000.parquet"
CC_WARC = DATA / "resiliparse-warc" / "warcfile.warc.gz"


def _pages() -> dict[str, list[tuple[str, str]]]:
    """Real (image url, alt) pairs of the CC WARC, grouped by page url."""
    pages: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    for status, r in read_file(str(CC_WARC), IngestConfig()):
        if status == "ok":
            pages[json.loads(r["extra"])["page_url"]].append((r["url"], r["caption"]))
    return dict(pages)


def mmc4_documents() -> list[dict]:
    """One mmc4 document per page: sentences = the page's alt texts plus a LAION caption
    (unmatched); image k matched to sentence k, in reverse order to test the indexing."""
    laion = pq.read_table(LAION).column("TEXT").to_pylist()
    docs = []
    for n, (page, pairs) in enumerate(sorted(_pages().items())):
        texts = [cap for _, cap in pairs] + [laion[n]]
        images = []
        for k, (url, _) in reversed(list(enumerate(pairs))):
            sims = [round(0.15 + 0.01 * ((k + j) % 7), 4) for j in range(len(texts))]
            sims[k] = 0.31
            images.append({"image_name": hashlib.sha1(url.encode()).hexdigest()[:12] + ".jpg", "raw_url": url,
                           "matched_text_index": k, "matched_sim": 0.31, "face_detections": None, "_sims": sims})
        docs.append({"url": page, "text_list": texts,
                     "image_info": [{k: v for k, v in im.items() if k != "_sims"} for im in images],
                     "similarity_matrix": [im["_sims"] for im in images], "could_have_url_duplicate": 0})
    return docs


@pytest.fixture(scope="module")
def mmc4_file(tmp_path_factory) -> tuple[Path, list[dict]]:
    docs = mmc4_documents()
    path = tmp_path_factory.mktemp("mmc4") / "docs_shard_0_v2.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(d) + "\n" for d in docs).encode()))
    return path, docs


def test_mmc4_one_candidate_per_image(mmc4_file):
    path, docs = mmc4_file
    n_images = sum(len(d["image_info"]) for d in docs)
    assert len(docs) >= 3 and n_images == 32  # the 32 kept pairs of the CC WARC
    pairs = list(read_file(str(path), IngestConfig(input_format="mmc4")))
    assert [s for s, _ in pairs] == ["ok"] * n_images
    want = [(line, d["url"], im["raw_url"], d["text_list"][im["matched_text_index"]], k)
            for line, d in enumerate(docs) for k, im in enumerate(d["image_info"])]
    extras = [json.loads(r["extra"]) for _, r in pairs]
    got = [(r["offset"], e["page_url"], r["url"], r["caption"], e["image_index"]) for (_, r), e in zip(pairs, extras)]
    assert got == want
    pages = _pages()
    for _, r in pairs:  # url and caption are the real pair of that page
        assert (r["url"], r["caption"]) in pages[json.loads(r["extra"])["page_url"]]
        assert r["source_format"] == "mmc4" and json.loads(r["extra"])["matched_sim"] == 0.31


def test_mmc4_malformed_documents_name_the_field(tmp_path, mmc4_file):
    _, docs = mmc4_file
    good = docs[0]
    bad_index = dict(good, image_info=[dict(good["image_info"][0], matched_text_index=len(good["text_list"]))])
    list_url = dict(good, image_info=[dict(good["image_info"][0], raw_url=[good["image_info"][0]["raw_url"]])])
    no_texts = {k: v for k, v in good.items() if k != "text_list"}
    not_object = dict(good, image_info=["just a string"])
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(d) for d in (bad_index, list_url, no_texts, not_object, good)) + "\n{broken\n")
    cfg = IngestConfig(input_format="mmc4", extra_cols=["could_have_url_duplicate", "image_info[*].image_name"])
    pairs = list(read_file(str(path), cfg, source="bad.jsonl"))
    errors = [r.get("error") for s, r in pairs if s != "ok"]
    assert [s for s, _ in pairs] == ["malformed_row"] * 4 + ["ok"] * len(good["image_info"]) + ["malformed_row"]
    n = len(good["text_list"])
    assert f"image_info[0].matched_text_index {n} is not an index into text_list ({n} sentences)" in errors[0]
    assert "url column 'image_info[*].raw_url' holds a list, not text" in errors[1]
    assert "mmc4 field 'text_list' is NoneType, not a list" in errors[2]
    assert "image_info[0] is str, not an object" in errors[3]
    assert all(e.startswith("bad.jsonl row ") for e in errors)
    extra = json.loads(pairs[4][1]["extra"])
    assert extra["could_have_url_duplicate"] == 0
    assert extra["image_info[*].image_name"] == good["image_info"][0]["image_name"]


def test_list_valued_caption_is_malformed_row_not_a_repr(mmc4_file, tmp_path):
    """The issue's case: --caption-col text_list on an mmc4 file must not 'succeed'."""
    path, docs = mmc4_file
    pairs = list(read_file(str(path), IngestConfig(url_col="url", caption_col="text_list"), source="m.jsonl.gz"))
    assert [s for s, _ in pairs] == ["malformed_row"] * len(docs)
    assert all("caption column 'text_list' holds a list, not text" in r["error"] for _, r in pairs)
    assert all(r["caption"] == "" for _, r in pairs)
    # the same in Parquet: a list column of real LAION captions
    t = pq.read_table(LAION).slice(0, 50)
    pq.write_table(pa.table({"URL": t.column("URL"), "TEXT": pa.array([[c] for c in t.column("TEXT").to_pylist()])}),
                   tmp_path / "lists.parquet")
    pairs = list(read_file(str(tmp_path / "lists.parquet"), IngestConfig()))
    assert [s for s, _ in pairs] == ["malformed_row"] * 50
    assert "caption column 'caption' holds a list" in pairs[0][1]["error"]
    # an object where the url must be
    path2 = tmp_path / "obj.jsonl"
    path2.write_text(json.dumps({"url": {"href": "http://e.com/1.jpg"}, "caption": "x"}) + "\n")
    assert "url column 'url' holds an object, not text" in list(read_file(str(path2), IngestConfig()))[0][1]["error"]


def test_column_paths_dots_index_and_list_expansion(tmp_path):
    t = pq.read_table(LAION).slice(0, 40).to_pylist()
    urls, caps = [r["URL"].strip() for r in t], [r["TEXT"].strip() for r in t]
    nested = tmp_path / "nested.jsonl"
    nested.write_text("".join(json.dumps({"meta": {"url": u, "lic": "cc"}, "texts": [c, "second"]}) + "\n"
                              for u, c in zip(urls, caps)))
    pairs = list(read_file(str(nested), IngestConfig(url_col="meta.url", caption_col="texts[0]",
                                                     extra_cols=["meta.lic"])))
    assert [(r["url"], r["caption"]) for _, r in pairs] == list(zip(urls, caps))
    assert json.loads(pairs[0][1]["extra"]) == {"meta.lic": "cc"}

    # one page per 4 images; a page whose images is a string, and one without images
    pages = [{"page": f"p{i}", "images": [{"src": u, "alt": c} for u, c in zip(urls[i:i + 4], caps[i:i + 4])]}
             for i in range(0, 40, 4)]
    pages += [{"page": "odd", "images": "not a list"}, {"page": "none"}]
    path = tmp_path / "pages.jsonl.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(p) + "\n" for p in pages).encode()))
    cfg = IngestConfig(url_col="images[*].src", caption_col="images[*].alt", extra_cols=["page"])
    pairs = list(read_file(str(path), cfg))
    assert [(r["url"], r["caption"]) for s, r in pairs if s == "ok"] == list(zip(urls, caps))
    assert [r["offset"] for s, r in pairs if s == "ok"] == [i // 4 for i in range(40)]
    assert json.loads(pairs[5][1]["extra"]) == {"page": "p4"}  # the second page starts at image 4
    assert pairs[-1][0] == "malformed_row" and "images holds str, not a list" in pairs[-1][1]["error"]
    assert len(pairs) == 41

    # a Parquet struct column, walked the same way
    pq.write_table(pa.table({"meta": [{"url": u, "text": c} for u, c in zip(urls, caps)]}), tmp_path / "s.parquet")
    pairs = list(read_file(str(tmp_path / "s.parquet"), IngestConfig(url_col="meta.url", caption_col="meta.text")))
    assert [(r["url"], r["caption"]) for _, r in pairs] == list(zip(urls, caps))
    # ... and a Parquet list<struct> column expanded with [*]
    pq.write_table(pa.Table.from_pylist(pages[:10]), tmp_path / "pages.parquet")
    pairs = list(read_file(str(tmp_path / "pages.parquet"), cfg))
    assert [(r["url"], r["caption"]) for s, r in pairs if s == "ok"] == list(zip(urls, caps)) and len(pairs) == 40


def test_bad_column_paths_make_a_bad_file(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"a": [{"u": "http://e.com/1.jpg"}], "b": [{"t": "x"}]}) + "\n")
    with pytest.raises(ValueError, match=r"expand different lists \(a, b\)"):
        list(read_file(str(path), IngestConfig(url_col="a[*].u", caption_col="b[*].t")))
    with pytest.raises(ValueError, match="bad column path 'a..u'"):
        list(read_file(str(path), IngestConfig(url_col="a..u", caption_col="b")))
    info = InputRead(str(path), "p.jsonl", IngestConfig(url_col="a[*].u", caption_col="b[*].t")).run()
    assert info["status"] == "bad_file" and "[*] may name one list only" in info["error"]


def test_cli_runs_mmc4(mmc4_file, tmp_path):
    path, docs = mmc4_file
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "beam_runner.py"), "run", "--input", str(path),
                           "--input-format", "mmc4", "--until", "ingest", "--output", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["ingest"]["kept"] == 32 and manifest["inputs"][0]["source"] == path.name
    rows = pq.read_table(out / "until_ingest").to_pylist()
    assert len(rows) == 32 and all(not r["caption"].startswith("[") for r in rows)
    assert {json.loads(r["extra"])["page_url"] for r in rows} == {d["url"] for d in docs}
