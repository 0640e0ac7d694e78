"""Output layouts (``sink.layout``): the demo pipeline's shards read with the conventions of the
tool each layout imitates.

* img2dataset: keys from img2dataset's own ``compute_key``, webdataset samples with ``.json``
  metadata, per-shard Parquet with img2dataset's columns and ``status == "success"``,
  ``_stats.json`` with the fields img2dataset's ``write_stats`` writes.
* datacomp: what DataComp's ``resharder.py`` reads (``{:08d}.tar``, ``{:08d}_stats.json``
  ``successes``, the 128-bit hex ``uid`` of each sample's json as a ``u8,u8`` pair) and what its
  filtering baselines read from the metadata Parquet (columns, types, uid conversion).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # img2dataset imports albumentations: no update check

from clipcurate.sinks import layouts as lay
from clipcurate.sinks.config import SinkConfig
from clipcurate.sinks.shards import write_layout_files

img2dataset_downloader = pytest.importorskip("img2dataset.downloader", reason="img2dataset is in the test extra")
img2dataset_logger = pytest.importorskip("img2dataset.logger")

IMG2DATASET_COLUMNS = ["uid", "caption", "url", "key", "status", "error_message", "width", "height",
                       "original_width", "original_height", "exif", "sha256"]
DATACOMP_COLUMNS = ["uid", "url", "text", "original_width", "original_height", "clip_b32_similarity_score",
                    "clip_l14_similarity_score", "face_bboxes", "sha256"]


# ---- pure core -------------------------------------------------------------------------------

def test_keys_are_img2dataset_compute_key():
    for layout, oom_shard_count in (("img2dataset", 5), ("datacomp", 8)):
        for shard, index, digits in ((0, 0, 4), (3, 7, 1), (12, 9999, 4), (99999, 5, 3)):
            assert lay.img2dataset_key(shard, index, digits, layout) == \
                img2dataset_downloader.compute_key(index, shard, digits, oom_shard_count)
    with pytest.raises(ValueError, match="does not fit"):
        lay.img2dataset_key(0, 10, 1, "img2dataset")


def test_sample_digits_follow_img2dataset_and_widen_for_big_shards():
    assert lay.sample_digits(10000, 10000) == 4          # img2dataset: ceil(log10(number_sample_per_shard))
    assert lay.sample_digits(10001, 10000) == 5          # a shard above samples_per_shard still fits
    assert lay.sample_digits(3, 4) == 1 and lay.sample_digits(0, 1) == 1


def test_score_column_named_after_the_model():
    assert lay.score_column("ViT-B-32") == "clip_b32_similarity_score"
    assert lay.score_column("ViT-L-14-quickgelu") == "clip_l14_similarity_score"
    assert lay.score_column("clipcurate-tiny") == "clip_clipcurate_tiny_similarity_score"
    assert lay.datacomp_schema("clip_b32_similarity_score").names == DATACOMP_COLUMNS


def test_unknown_layout_is_a_clear_error():
    with pytest.raises(ValueError, match="choose from clipcurate, datacomp, img2dataset"):
        SinkConfig(layout="laion")
    assert SinkConfig().layout == "clipcurate"


def test_stats_json_has_img2dataset_fields(tmp_path):
    img2dataset_logger.write_stats(str(tmp_path), 7, 3, 3, 0, 0, 0.0, 0.0, img2dataset_logger.CappedCounter(), 5)
    theirs = json.loads((tmp_path / "00007_stats.json").read_text())
    ours = json.loads(lay.stats_json(3))
    assert ours.keys() == theirs.keys()
    assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in theirs.items()}
    assert ours["successes"] == ours["count"] == 3 and ours["status_dict"] == {"success": 3}


# ---- the demo pipeline in each layout --------------------------------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from clipcurate.demo import demo_config, demo_dir, serve_directory, write_candidates
    from clipcurate.pipelines.curate import run

    base = tmp_path_factory.mktemp("layouts")
    out = {}
    with serve_directory(demo_dir()) as url:
        cands = write_candidates(url, base / "candidates.parquet")
        for layout in ("img2dataset", "datacomp"):
            cfg = demo_config(str(base / layout), str(cands))
            cfg.sink.layout = layout
            out[layout] = (base / layout, run(cfg, [], report=False))
    return out


def _ours(out: Path) -> dict[str, dict]:
    """Our own parquet/ rows (written in every layout), by uid."""
    return {r["uid"]: r for f in sorted((out / "parquet").glob("*.parquet")) for r in pq.read_table(f).to_pylist()}


def test_img2dataset_layout_reads_like_img2dataset_output(runs):
    out, manifest = runs["img2dataset"]
    ours = _ours(out)
    n = manifest["total_samples"]
    assert n == len(ours) > 0
    shard_dir = out / "shards"
    names = sorted(p.name for p in shard_dir.iterdir())
    stems = sorted({p.split(".")[0].replace("_stats", "") for p in names})
    assert names == sorted(f"{s}{suffix}" for s in stems for suffix in (".parquet", ".tar", "_stats.json"))
    assert all(len(s) == 5 and s.isdigit() for s in stems)

    # webdataset, the way img2dataset's docs read its output
    seen = {}
    ds = wds.WebDataset(sorted(str(p) for p in shard_dir.glob("*.tar")), shardshuffle=False)
    for key, jpg, txt, meta, url in ds.to_tuple("__key__", "jpg", "txt", "json", "__url__"):
        meta = json.loads(meta)
        assert key == meta["key"] and key[:5] == Path(url).stem and len(key) == 5 + 1
        assert meta["status"] == "success" and meta["error_message"] is None
        assert txt.decode() == meta["caption"] == ours[meta["uid"]]["caption"]
        with Image.open(io.BytesIO(jpg)) as im:
            assert (im.width, im.height) == (meta["width"], meta["height"])
        assert hashlib.sha256(jpg).hexdigest() == meta["sha256"]
        assert meta["url"] == ours[meta["uid"]]["url"]
        seen[key] = meta
    assert len(seen) == n

    # per-shard Parquet: img2dataset's columns, every row a success, the same rows as the json
    df = pd.concat([pd.read_parquet(p) for p in sorted(shard_dir.glob("*.parquet"))], ignore_index=True)
    assert list(df.columns) == IMG2DATASET_COLUMNS
    assert (df["status"] == "success").all() and len(df) == n
    assert df.set_index("key")[["uid", "caption", "width", "sha256"]].to_dict("index") == \
        {k: {c: m[c] for c in ("uid", "caption", "width", "sha256")} for k, m in seen.items()}
    assert str(pq.read_schema(next(shard_dir.glob("*.parquet"))).field("width").type) == "int32"

    # _stats.json: the counts img2dataset's logger sums
    stats = [json.loads(p.read_text()) for p in sorted(shard_dir.glob("*_stats.json"))]
    assert sum(s["successes"] for s in stats) == sum(s["count"] for s in stats) == n
    assert sum(s["failed_to_download"] + s["failed_to_resize"] for s in stats) == 0


def test_datacomp_layout_reads_like_datacomp(runs):
    out, manifest = runs["datacomp"]
    ours = _ours(out)
    n = manifest["total_samples"]
    shard_dir = out / "shards"
    # resharder: shards {:08d}.tar from 0 on, sizes from {:08d}_stats.json "successes"
    num = len(manifest["shards"])
    sizes = {}
    for i in range(num):
        assert (shard_dir / f"{i:08d}.tar").is_file()
        sizes[i] = int(json.loads((shard_dir / f"{i:08d}_stats.json").read_text())["successes"])
    assert not (shard_dir / f"{num:08d}.tar").exists() and sum(sizes.values()) == n

    # resharder: uid from each sample's json -> (u8, u8); a sorted subset selects by searchsorted
    u16 = np.dtype("u8,u8")
    uids = []
    for i in range(num):
        with tarfile.open(shard_dir / f"{i:08d}.tar") as tar:
            metas = [json.load(tar.extractfile(m)) for m in tar.getmembers() if m.name.endswith(".json")]
        assert len(metas) == sizes[i]
        uids += [m["uid"] for m in metas]
    assert sorted(uids) == sorted(ours) and all(len(u) == 32 and int(u, 16) >= 0 for u in uids)
    subset = np.sort(np.array([divmod(int(u, 16), 2 ** 64) for u in sorted(ours)[::2]], u16))
    picked = [u for u in uids
              if np.searchsorted(subset, np.array([divmod(int(u, 16), 2 ** 64)], u16)[0], "right")
              - np.searchsorted(subset, np.array([divmod(int(u, 16), 2 ** 64)], u16)[0], "left") == 1]
    assert sorted(picked) == sorted(ours)[::2]

    # metadata: DataComp's columns and types; the baselines' reads and uid conversion work
    files = sorted((out / "metadata").glob("*.parquet"))
    assert [f.stem for f in files] == [f"{i:08d}" for i in range(num)]
    schema = pq.read_schema(files[0])
    score = "clip_clipcurate_tiny_similarity_score"        # the demo scores with clipcurate-tiny
    assert schema.names == DATACOMP_COLUMNS[:7] + [score] + DATACOMP_COLUMNS[7:]
    assert schema.field("uid").type == pa.string() and schema.field("original_width").type == pa.int64()
    assert schema.field("clip_b32_similarity_score").type == pa.float32()
    assert schema.field("face_bboxes").type == pa.list_(pa.list_(pa.float64()))
    df = pd.concat([pd.read_parquet(f, columns=["uid", "text", "original_width", "original_height", score])
                    for f in files], ignore_index=True)
    uid_int = df.uid.apply(int, base=16)
    pairs = np.array(list(zip((uid_int // 2 ** 64).astype("uint64"), (uid_int % 2 ** 64).astype("uint64"))), u16)
    assert len(pairs) == n and set(df.uid) == set(ours)
    for r in df.itertuples():
        assert r.text == ours[r.uid]["caption"] and r.original_width == ours[r.uid]["original_width"]
        assert getattr(r, score) == pytest.approx(ours[r.uid]["clip_score"])
    assert pd.read_parquet(files[0], columns=["clip_b32_similarity_score"]).iloc[:, 0].isna().all()


@pytest.mark.parametrize("layout", ["img2dataset", "datacomp"])
def test_layout_files_are_a_function_of_the_samples(runs, layout, tmp_path):
    """Rewriting a shard from its samples in another order gives the pipeline's bytes."""
    out, manifest = runs[layout]
    ours = _ours(out)
    info = manifest["shards"][0]
    with tarfile.open(out / info["tar"]) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    recs = []
    for name, data in files.items():
        if name.endswith(".json"):
            meta = json.loads(data)
            recs.append({**ours[meta["uid"]], "image": files[name[:-5] + ".jpg"]})
    random.Random(1).shuffle(recs)
    digits = len(json.loads(next(v for k, v in files.items() if k.endswith(".json")))["key"]) \
        - lay.SHARD_DIGITS[layout]
    again = write_layout_files(info["shard"], recs, str(tmp_path), layout, digits,
                               manifest["config"]["scoring"]["model"])
    for k in ("tar", "shard_parquet", "stats", "metadata"):
        if k in info:
            assert again[k] == info[k] and again[f"{k}_sha256"] == info[f"{k}_sha256"], k
            assert hashlib.sha256((out / info[k]).read_bytes()).hexdigest() == info[f"{k}_sha256"]


def test_a_run_in_another_layout_removes_the_previous_layout_files(tmp_path):
    """Stale files of an earlier run into the same output (another layout) are deleted."""
    from clipcurate.pipelines.curate import _remove_stale_shards

    now = ["shards/00000000.tar", "shards/00000000.parquet", "shards/00000000_stats.json",
           "metadata/00000000.parquet", "parquet/00000.parquet"]
    before = ["shards/00000.tar", "shards/00001.parquet", "shards/00001_stats.json", "metadata/00000001.parquet"]
    for name in now + before:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    manifest = {"shards": [{"shard": 0, "tar": now[0], "shard_parquet": now[1], "stats": now[2],
                            "metadata": now[3], "parquet": now[4]}], "rejects": [], "until": None}
    _remove_stale_shards(str(tmp_path), manifest)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == sorted(now)
