"""The whole pipeline with every safety check on, through the command line's ``--set safety.…``:
the demo candidates (real Open Images photos served on loopback) with a URL blocklist, an
opt-out list, an MD5 list, a PDQ list made from a resized copy, toxicity, NSFW and face
blurring.  The manifest shows what each check removed or changed (in = kept + dropped), the
shards carry the new columns, rejects name the list and hold no image."""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from clipcurate.demo import demo_dir, serve_directory, write_candidates

pytest.importorskip("nudenet")
pdqhash = pytest.importorskip("pdqhash", reason="pdqhash (extra 'pdq') needs a C++ compiler to build")
from clipcurate.safety.hashes import pdq_hash  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IMAGES = demo_dir() / "images"


def _rows(folder: Path):
    return [r for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


@pytest.fixture(scope="module")
def safety_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("safety")
    with serve_directory(demo_dir()) as url:
        cands = write_candidates(url, base / "candidates.parquet")
        lists = base / "lists"
        lists.mkdir()
        (lists / "urls.txt").write_text(f"# the castle, any query\n{url}/images/00416784a9cb1756.jpg*\n")
        (lists / "optout.txt").write_text(f"{url}/images/00b6269cf7ccd74a.jpg?fr=1\n")
        cafe = (IMAGES / "008d075acae27509.jpg").read_bytes()
        (lists / "md5.txt").write_text(hashlib.md5(cafe).hexdigest() + "\n")
        grass = Image.open(IMAGES / "010c974fd28419f6.jpg").convert("RGB")
        buf = io.BytesIO()
        grass.resize((grass.width // 2, grass.height // 2)).save(buf, "JPEG", quality=70)
        (lists / "pdq.txt").write_text(pdq_hash(buf.getvalue())[0].hex() + ",100\n")
        out = base / "out"
        sets = ["download.respect_robots=false", "download.keep_original=true", "balance.enabled=false",
                "sink.keep_rejects=true", "sink.samples_per_shard=4", "filter.enabled=false",
                "scoring.model=clipcurate-tiny", "scoring.random_init=true",
                f"safety.url_blocklists=[\"org-urls={lists / 'urls.txt'}\"]",
                f"safety.optout_lists=[\"{lists / 'optout.txt'}\"]",
                f"safety.hash_lists=[\"ncmec-md5={lists / 'md5.txt'}\"]",
                f"safety.pdq_lists=[\"org-pdq={lists / 'pdq.txt'}\"]",
                "safety.toxic_text=true", "safety.nsfw=true", "safety.faces=blur"]
        cmd = [sys.executable, str(ROOT / "beam_runner.py"), "run", "--input", str(cands), "--allow-loopback",
               "--output", str(out)] + [a for s in sets for a in ("--set", s)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        # the same run on two worker processes (same server, hence the same URLs and uids)
        out2 = base / "out2"
        cmd2 = [a if a != str(out) else str(out2) for a in cmd] + [
            "--", "--runner=FnApiRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
        proc2 = subprocess.run(cmd2, capture_output=True, text=True, timeout=600)
        assert proc2.returncode == 0, proc2.stderr[-3000:]
    return base, out, json.loads((out / "manifest.json").read_text())


def test_manifest_counts_every_check(safety_run):
    base, out, m = safety_run
    stages = m["stages"]
    order = list(stages)
    assert order.index("filter") < order.index("safety_text") < order.index("download") < order.index("safety_image")
    assert all(c["balanced"] for c in stages.values())
    st, si = stages["safety_text"], stages["safety_image"]
    assert st["dropped"] == {"blocklisted": 2, "opted_out": 1}  # castle twice (prefix), the biplane ?fr=1
    assert si["dropped"] == {"blocklisted": 2}  # the café (MD5), the grass (PDQ of a resized copy)
    assert si["in"] == stages["download"]["kept"]
    blurred = si["other"]["face_blurred"]
    assert blurred >= 4 and m["stats"]["safety_image"]["faces_blurred"] == blurred
    lists = {i["name"]: i for i in m["stats"]["safety_text"]["lists"] + m["stats"]["safety_image"]["lists"]}
    assert set(lists) == {"org-urls", "optout.txt", "ncmec-md5", "org-pdq"}
    for i in lists.values():
        assert i["sha256"] == hashlib.sha256((base / "lists" / i["file"]).read_bytes()).hexdigest()
    models = {x["name"] for x in m["stats"]["safety_image"]["models"] + m["stats"]["safety_text"]["models"]}
    assert models == {"nudenet-320n", "alt-profanity-check"}
    assert m["stats"]["safety_image"]["digests_of"] == "fetched bytes"
    assert str(base) not in json.dumps(m["stats"])  # list files by name, not by path


def test_shards_carry_safety_columns_and_blurred_images(safety_run):
    _, out, m = safety_run
    rows = _rows(out / "parquet")
    assert len(rows) == m["total_samples"] > 0
    assert all(r["toxic_score"] is not None and r["nsfw_score"] is not None and r["face_bboxes"] is not None
               for r in rows)
    blurred = [r for r in rows if r["faces_blurred"]]
    assert blurred and all(r["face_bboxes"] for r in blurred)
    originals = {hashlib.sha256(p.read_bytes()).hexdigest() for p in IMAGES.glob("*.jpg")}
    tars = sorted(str(p) for p in (out / "shards").glob("*.tar"))
    samples = {s["__key__"]: s for s in wds.WebDataset(tars, shardshuffle=False)}
    for r in rows:
        img = samples[r["uid"]]["jpg"]
        assert hashlib.sha256(img).hexdigest() == r["sha256"]
        assert (r["sha256"] in originals) != bool(r["faces_blurred"])  # blurred bytes are new bytes


def test_rejects_name_the_list_and_hold_no_image(safety_run):
    _, out, _ = safety_run
    rej = [r for r in _rows(out / "rejects") if r["stage"].startswith("safety")]
    by = {(r["stage"], r["reason"], r["safety_list"]) for r in rej}
    assert by == {("safety_text", "blocklisted", "org-urls"), ("safety_text", "opted_out", "optout.txt"),
                  ("safety_image", "blocklisted", "ncmec-md5"), ("safety_image", "blocklisted", "org-pdq")}
    img_hits = [r for r in rej if r["stage"] == "safety_image"]
    assert {r["safety_match"].split(":")[0] for r in img_hits} == {"md5", "pdq"}
    # the report's thumbnails: kept (blurred) images, none of a blocklisted one
    examples = pq.read_table(out / "stats" / "examples.parquet").to_pylist()
    assert examples and not [e for e in examples if e["stage"].startswith("safety")]
    page = (out / "report.html").read_text()
    assert 'data-stage="safety_image" data-reason="blocklisted"' in page
    assert 'data-stage="safety_image" data-other="face_blurred"' in page  # what the stage changed


def test_two_workers_write_the_same_bytes(safety_run):
    base, out, m = safety_run
    out2 = base / "out2"
    files = sorted(p.relative_to(out) for d in ("shards", "parquet", "rejects")
                   for p in (out / d).glob("*") if p.is_file())
    assert any(str(f).endswith(".tar") for f in files) and any(str(f).startswith("rejects") for f in files)
    assert files == sorted(p.relative_to(out2) for d in ("shards", "parquet", "rejects")
                           for p in (out2 / d).glob("*") if p.is_file())
    for f in files:
        assert (out / f).read_bytes() == (out2 / f).read_bytes(), f
    m2 = json.loads((out2 / "manifest.json").read_text())
    assert m2["stages"] == m["stages"] and m2["shards"] == m["shards"]
