"""End to end: the demo pipeline from raw candidates to shards, on the loopback web.

Checks what a user would: shards readable by webdataset with images and captions intact,
manifest counts that add up for every stage, byte-identical shards with 1 and 2 worker
processes, and the CLI on real files with ``--until`` (no network).
"""
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

from clipcurate.demo import demo_config, demo_dir, serve_directory, write_candidates
from clipcurate.pipelines.curate import run
from clipcurate.testing.shared_data import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
DATA = SHARED_DATA
MP = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def _shard_hashes(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "shards").glob("*.tar"))}


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    """The demo pipeline run twice: in-process and with 2 worker processes."""
    base = tmp_path_factory.mktemp("e2e")
    outs = {}
    with serve_directory(demo_dir()) as url:
        cands = write_candidates(url, base / "candidates.parquet")
        for name, args in (("single", []), ("multi", MP)):
            cfg = demo_config(str(base / name), str(cands))
            outs[name] = (base / name, run(cfg, args))
    return outs


def test_demo_shards_roundtrip_through_webdataset(demo_runs):
    out, manifest = demo_runs["single"]
    assert manifest["total_samples"] > 0
    rows = {r["uid"]: r for f in sorted((out / "parquet").glob("*.parquet")) for r in pq.read_table(f).to_pylist()}
    seen = 0
    for shard in manifest["shards"]:
        tar = out / shard["tar"]
        assert hashlib.sha256(tar.read_bytes()).hexdigest() == shard["tar_sha256"]
        for key, jpg, txt, meta in wds.WebDataset(str(tar), shardshuffle=False).to_tuple("__key__", "jpg", "txt", "json"):
            meta = json.loads(meta)
            img = Image.open(io.BytesIO(jpg))
            img.load()
            assert (img.width, img.height) == (meta["width"], meta["height"])
            assert txt.decode() == meta["caption"] == rows[key]["caption"]
            assert hashlib.sha256(jpg).hexdigest() == meta["sha256"]
            assert meta["status"] == "ok" and meta["url"].startswith("http://127.0.0.1:")
            seen += 1
    assert seen == manifest["total_samples"] == len(rows)


def test_demo_counts_add_up_and_cover_every_stage(demo_runs):
    _, manifest = demo_runs["single"]
    stages = manifest["stages"]
    for name, c in stages.items():
        assert c["balanced"], (name, c)
        assert c["in"] == c["kept"] + sum(c["dropped"].values())
    n_candidates = sum(1 for _ in open(demo_dir() / "candidates.csv", encoding="utf-8")) - 1
    assert stages["ingest"]["in"] == n_candidates
    order = list(stages)
    for earlier, later in zip(order, order[1:]):
        assert stages[later]["in"] == stages[earlier]["kept"], (earlier, later)
    assert stages["write"]["kept"] == manifest["total_samples"]
    # the demo candidates exercise real drops: camera file names, a 404, a non-image, a duplicate image
    assert stages["filter"]["dropped"].get("too_short", 0) + stages["filter"]["dropped"].get("junk_alt", 0) >= 4
    assert stages["filter"]["dropped"].get("lang", 0) >= 2
    assert stages["dedupe_url"]["dropped"] == {"dup_url": 1}
    assert stages["download"]["dropped"].get("http_404") == 1
    assert stages["download"]["dropped"].get("not_image") == 1
    assert stages["dedupe_content"]["dropped"].get("dup_content", 0) >= 1
    rejects = [r for f in (demo_runs["single"][0] / "rejects").glob("*.parquet") for r in pq.read_table(f).to_pylist()]
    dropped_total = sum(sum(c["dropped"].values()) for c in stages.values())
    assert len(rejects) == dropped_total


def test_same_bytes_with_one_and_two_workers(demo_runs):
    single, multi = _shard_hashes(demo_runs["single"][0]), _shard_hashes(demo_runs["multi"][0])
    assert single and single == multi
    a = [s["parquet_sha256"] for s in demo_runs["single"][1]["shards"]]
    assert a == [s["parquet_sha256"] for s in demo_runs["multi"][1]["shards"]]


def test_cli_text_only_run_on_real_files(tmp_path):
    """`run --until balance` on the real LAION parquet and a real Common Crawl WARC: no network."""
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "beam_runner.py"), "run",
           "--input", str(DATA / "img2dataset-tests" / "test_1000.parquet"),
           "--input", str(DATA / "resiliparse-warc" / "warcfile.warc.gz"),
           "--metadata", str(demo_dir() / "metadata.json"), "--set", "filter.languages=[]",
           "--set", "balance.t=5", "--until", "balance", "--output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"]["ingest"]["in"] >= 1000 + 32
    assert all(c["balanced"] for c in manifest["stages"].values())
    rows = [r for f in (out / "until_balance").glob("*.parquet") for r in pq.read_table(f).to_pylist()]
    assert len(rows) == manifest["stages"]["balance"]["kept"] > 0
    assert all(r["matched"] for r in rows)
    assert not (out / "shards").exists()
    assert {i["source"] for i in manifest["inputs"]} == {"test_1000.parquet", "warcfile.warc.gz"}
    assert {i["status"] for i in manifest["inputs"]} == {"ok"}


def test_cli_reports_bad_input_clearly(tmp_path):
    cmd = [sys.executable, str(ROOT / "beam_runner.py"), "run", "--input", str(tmp_path / "nope-*.parquet"),
           "--output", str(tmp_path / "o")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "nope-*.parquet" in proc.stderr


@pytest.mark.parametrize("until,last", [("ingest", "ingest"), ("filter", "filter"), ("dedupe_url", "dedupe_url")])
def test_until_stops_right_after_the_stage(tmp_path, until, last):
    from clipcurate.config import RunConfig

    cfg = RunConfig(until=until)
    cfg.ingest.inputs = [str(DATA / "img2dataset-tests" / "test_1000.parquet")]
    cfg.sink.output = str(tmp_path)
    manifest = run(cfg, [], report=False)
    assert list(manifest["stages"]) == ["ingest", "filter", "dedupe_url"][: ["ingest", "filter", "dedupe_url"].index(last) + 1] + ["write"]
    rows = sum(pq.read_metadata(f).num_rows for f in (tmp_path / f"until_{until}").glob("*.parquet"))
    assert rows == manifest["stages"][last]["kept"] == manifest["stages"]["write"]["kept"]


def test_rerun_with_fewer_rows_removes_stale_shards(tmp_path):
    from clipcurate.config import RunConfig

    cfg = RunConfig(until="filter")
    cfg.ingest.inputs = [str(DATA / "img2dataset-tests" / "test_1000.parquet")]
    cfg.sink.output = str(tmp_path)
    cfg.sink.samples_per_shard = 100
    first = run(cfg, [], report=False)
    cfg.sink.samples_per_shard = 400
    second = run(cfg, [], report=False)
    assert len(second["shards"]) < len(first["shards"])
    on_disk = sorted(p.name for p in (tmp_path / "until_filter").glob("*.parquet"))
    assert on_disk == sorted(s["parquet"].rsplit("/", 1)[-1] for s in second["shards"])
