"""Nothing of the machine in the output: the same inputs curated from two directories give
byte-identical Parquet, rejects and shards, and no output byte holds the directory
(lineage is the path relative to the glob's fixed prefix, plus sha256 in the manifest)."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import clipcurate.ingest.transform as transform
from clipcurate.config import RunConfig
from clipcurate.demo import demo_config, demo_dir, serve_directory, write_candidates
from clipcurate.ingest import IngestConfig, expand_inputs
from clipcurate.ingest.lineage import fixed_prefix, relative_name
from clipcurate.pipelines.curate import run
from clipcurate.testing.shared_data import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
DATA = SHARED_DATA
LAION = DATA / "img2dataset-tests" / "test_1000.parquet"
CC_WARC = DATA / "resiliparse-warc" / "warcfile.warc.gz"


# -- names ---------------------------------------------------------------------------------
def test_fixed_prefix_and_relative_names():
    assert fixed_prefix("/a/b/*.parquet") == "/a/b/"
    assert fixed_prefix("/a/b/part-[0-9]/x.csv") == "/a/b/"
    assert fixed_prefix("gs://bucket/crawl/**/*.warc.gz") == "gs://bucket/crawl/"
    assert fixed_prefix("/a/b/x.parquet") == "/a/b/"
    assert relative_name("/a/b/x.parquet", "/a/b/") == "x.parquet"
    assert relative_name("gs://bucket/crawl/2020/x.warc.gz", "gs://bucket/crawl/") == "2020/x.warc.gz"
    assert relative_name("/elsewhere/y.csv", "/a/b/") == "y.csv"


def test_expand_inputs_names_subdirs_and_collisions(tmp_path):
    for sub in ("one", "two", "one/deep"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(LAION, tmp_path / sub / "c.parquet")
    shutil.copy(LAION, tmp_path / "one" / "only.parquet")
    found = expand_inputs(IngestConfig(inputs=[str(tmp_path / "one" / "**"), str(tmp_path / "two" / "c.parquet"),
                                               str(tmp_path / "one" / "only.parquet")]))
    names = {source: path for path, source, _ in found}
    # 'c.parquet' of pattern 0 and of pattern 1 collide: both get their pattern's index
    assert names == {"input0/c.parquet": str(tmp_path / "one" / "c.parquet"),
                     "input1/c.parquet": str(tmp_path / "two" / "c.parquet"),
                     "deep/c.parquet": str(tmp_path / "one" / "deep" / "c.parquet"),
                     "only.parquet": str(tmp_path / "one" / "only.parquet")}  # matched twice, listed once
    assert all(size == LAION.stat().st_size for _, _, size in found)


def test_relative_pattern_is_matched(tmp_path, monkeypatch):
    shutil.copy(LAION, tmp_path / "c.parquet")
    monkeypatch.chdir(tmp_path)
    assert [s for _, s, _ in expand_inputs(IngestConfig(inputs=["*.parquet"]))] == ["c.parquet"]


# -- the same data in two places -----------------------------------------------------------
def _place(root: Path) -> Path:
    """The inputs in ``root``: real files, a corrupt one and one that vanishes after listing."""
    d = root / "inputs"
    d.mkdir(parents=True)
    shutil.copy(LAION, d / "laion.parquet")
    shutil.copy(CC_WARC, d / "cc.warc.gz")
    (d / "cut.warc.gz").write_bytes(CC_WARC.read_bytes()[:50_000])
    (d / "junk.parquet").write_bytes(random.Random(0).randbytes(3000))
    shutil.copy(LAION, d / "gone.parquet")
    return d


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _without_config(manifest_bytes: bytes) -> dict:
    m = json.loads(manifest_bytes)
    del m["config"], m["config_hash"]  # the user's own config, as typed, keeps their paths
    return m


def test_text_first_run_is_the_same_bytes_from_two_directories(tmp_path, monkeypatch):
    runs = {}
    for name in ("checkout_a", "elsewhere/checkout_b"):
        d = _place(tmp_path / name)
        real = transform._expand

        def expand(patterns, real=real, gone=d / "gone.parquet"):
            out = real(patterns)
            gone.unlink()
            return out
        monkeypatch.setattr(transform, "_expand", expand)
        cfg = RunConfig(until="balance")
        cfg.ingest.inputs = [str(d / "*")]
        cfg.balance.metadata = str(demo_dir() / "metadata.json")
        cfg.balance.t = 5
        cfg.filter.languages = []
        cfg.sink.output = str(tmp_path / name / "out")
        cfg.sink.keep_rejects = True
        run(cfg, [], report=False)
        monkeypatch.setattr(transform, "_expand", real)
        runs[name] = _files(tmp_path / name / "out")
    a, b = runs["checkout_a"], runs["elsewhere/checkout_b"]
    assert sorted(a) == sorted(b) and any(k.startswith("until_balance/") for k in a)
    for key in a:
        if key != "manifest.json":
            assert a[key] == b[key], key
    ma, mb = _without_config(a["manifest.json"]), _without_config(b["manifest.json"])
    assert ma == mb
    for name, files in runs.items():
        for key, data in files.items():
            if key == "manifest.json":
                data = json.dumps(_without_config(data)).encode()
            assert str(tmp_path).encode() not in data and b"checkout_" not in data, (name, key)
    statuses = {i["source"]: i["status"] for i in ma["inputs"]}
    assert statuses == {"cc.warc.gz": "ok", "cut.warc.gz": "truncated_file", "gone.parquet": "unreadable_file",
                        "junk.parquet": "bad_file", "laion.parquet": "ok"}
    shas = {i["source"]: i["sha256"] for i in ma["inputs"]}
    assert shas["laion.parquet"] == hashlib.sha256(LAION.read_bytes()).hexdigest()
    rows = pq.read_table(tmp_path / "checkout_a" / "out" / "until_balance").to_pylist()
    assert rows and {r["source"] for r in rows} <= {"laion.parquet", "cc.warc.gz", "cut.warc.gz"}


@pytest.fixture(scope="module")
def demo_from_two_places(tmp_path_factory):
    base = tmp_path_factory.mktemp("lineage")
    outs = {}
    with serve_directory(demo_dir()) as url:
        cands = write_candidates(url, base / "made" / "candidates.parquet")
        for name in ("place_one", "deeper/place_two"):
            copy = base / name / "in" / "candidates.parquet"
            copy.parent.mkdir(parents=True)
            shutil.copy(cands, copy)
            run(demo_config(str(base / name / "out"), str(copy)), [], report=False)
            outs[name] = _files(base / name / "out")
    return base, outs


def test_full_pipeline_shards_are_the_same_bytes_from_two_directories(demo_from_two_places):
    base, outs = demo_from_two_places
    a, b = outs["place_one"], outs["deeper/place_two"]
    tars = [k for k in a if k.startswith("shards/")]
    assert tars and sorted(a) == sorted(b)
    for key in a:
        if key != "manifest.json":
            assert a[key] == b[key], key
        data = a[key] if key != "manifest.json" else json.dumps(_without_config(a[key])).encode()
        assert str(base).encode() not in data and b"place_one" not in data, key
    ma, mb = _without_config(a["manifest.json"]), _without_config(b["manifest.json"])
    for m in (ma, mb):  # the download stage's stats hold measured timings (not ingest's to fix)
        m["stats"].pop("download", None)
    assert ma == mb
    rows = [r for k in a if k.startswith("parquet/") for r in pq.read_table(base / "place_one" / "out" / k).to_pylist()]
    assert rows and {r["source"] for r in rows} == {"candidates.parquet"}


# -- the DFN experiment --------------------------------------------------------------------
def _dfn():
    spec = importlib.util.spec_from_file_location("dfn_loop_lineage", ROOT / "experiments" / "dfn_loop.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["dfn_loop_lineage"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_dfn_clean_shards_do_not_depend_on_the_checkout_location(tmp_path):
    """The clean subset's shard keys (and so the filter network's training order) come from
    class and file name: CIFAR copied into two 'checkouts' gives the same shard bytes."""
    dfn = _dfn()
    clean = dfn.split_cifar(0, 6, 0)["clean"]
    shards = []
    for name in ("a", "b/nested"):
        moved = []
        for p, y in clean:
            q = tmp_path / name / "cifar10-test-jpeg" / "test" / dfn.CLASSES[y] / p.name
            q.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(p, q)
            moved.append((q, y))
        out = dfn.write_clean_shards(tmp_path / name / "clean_shards", moved, seed=0, per_shard=25)
        shards.append({f.name: f.read_bytes() for f in sorted(out.glob("*.tar"))})
    assert len(shards[0]) == 3 and shards[0] == shards[1]
