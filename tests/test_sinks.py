"""Shard writers and manifest: deterministic bytes, webdataset-readable, atomic, counts add up."""
import io
import tarfile
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from apache_beam.options.pipeline_options import PipelineOptions

from clipcurate.schemas.uid import make_uid, shard_of
from clipcurate.sinks.manifest import build_manifest, stage_counts
from clipcurate.sinks.shards import WriteShards, num_shards, tar_bytes, write_shard
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
PHOTOS = sorted((DATA / "open-images-cc-test-images").glob("*.jpg"))


def _records(n=10):
    recs = []
    for i, path in enumerate((PHOTOS * 2)[:n]):
        url, cap = f"http://example.test/{i}.jpg", f"photo number {i} of a real scene"
        recs.append({"uid": make_uid(url, cap), "url": url, "caption": cap, "image": path.read_bytes(),
                     "image_format": "jpg", "status": "ok", "width": 10, "height": 20, "matched": [i]})
    return recs


def test_tar_is_order_independent_and_readable(tmp_path):
    recs = _records(6)
    assert tar_bytes(recs) == tar_bytes(list(reversed(recs)))
    info = write_shard(0, recs, str(tmp_path), tar=True, parquet=True)
    assert info["rows"] == 6
    ds = wds.WebDataset(str(tmp_path / "shards" / "00000.tar"), shardshuffle=False).to_tuple("__key__", "jpg", "txt", "json")
    got = list(ds)
    assert [k for k, *_ in got] == sorted(r["uid"] for r in recs)
    by_uid = {r["uid"]: r for r in recs}
    for key, jpg, txt, meta in got:
        assert jpg == by_uid[key]["image"]
        assert txt.decode() == by_uid[key]["caption"]
    with tarfile.open(tmp_path / "shards" / "00000.tar") as tar:
        assert {m.mtime for m in tar.getmembers()} == {0}
    table = pq.read_table(tmp_path / "parquet" / "00000.parquet")
    assert table.num_rows == 6 and "image" not in table.column_names
    assert table.column("uid").to_pylist() == sorted(by_uid)
    assert not list(tmp_path.rglob(".tmp-*")), "temp files must be renamed away"


def test_write_shards_in_beam_is_deterministic(tmp_path):
    recs = _records(10)
    outs = []
    for run, order in enumerate([recs, list(reversed(recs))]):
        out = tmp_path / f"run{run}"
        with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
            _ = p | beam.Create(order) | WriteShards(str(out), samples_per_shard=4)
        outs.append(out)
    n = num_shards(10, 4)
    assert n == 3
    for i in range(n):
        a = (outs[0] / "shards" / f"{i:05d}.tar").read_bytes()
        assert a == (outs[1] / "shards" / f"{i:05d}.tar").read_bytes()
        keys = [m.name.split(".")[0] for m in tarfile.open(fileobj=io.BytesIO(a)).getmembers()]
        assert all(shard_of(k, n) == i for k in keys)


def test_stage_counts_balance_and_order():
    pairs = [(("filter", "in"), 5), (("filter", "kept"), 3), (("filter", "dropped:lang"), 2),
             (("ingest", "in"), 5), (("ingest", "kept"), 5), (("filter", "in"), 1), (("filter", "kept"), 1)]
    counts = stage_counts(pairs, ["ingest", "filter", "download"])
    assert list(counts) == ["ingest", "filter", "download"]
    assert counts["filter"] == {"in": 6, "kept": 4, "dropped": {"lang": 2}, "balanced": True}
    assert counts["download"]["in"] == 0 and counts["download"]["balanced"]
    bad = stage_counts([(("x", "in"), 2), (("x", "kept"), 1)], [])
    assert bad["x"]["balanced"] is False


def test_manifest_rejects_duplicate_stats():
    with pytest.raises(ValueError, match="stat 'a'"):
        build_manifest(config={}, config_hash="h", seed=0, inputs=[], stage_order=[], counts=[],
                       stats=[("a", 1), ("a", 2)], shards=[], rejects=[], until=None, versions_={})


def test_killed_write_leaves_no_complete_looking_shard(tmp_path, monkeypatch):
    """If the process dies between writing and renaming, only a .tmp- file remains."""
    from apache_beam.io.filesystems import FileSystems

    def die(*_a, **_k):
        raise KeyboardInterrupt("killed")
    monkeypatch.setattr(FileSystems, "rename", die)
    with pytest.raises(KeyboardInterrupt):
        write_shard(3, _records(3), str(tmp_path), tar=True, parquet=False)
    assert not (tmp_path / "shards" / "00003.tar").exists()
    assert [p.name.startswith(".tmp-") for p in (tmp_path / "shards").iterdir()] == [True]


def test_rejects_sharing_a_uid_are_written_in_a_fixed_order():
    """Repeated rows (same url and caption, hence uid) dropped at one stage must not make the
    rejects Parquet depend on element order."""
    from clipcurate.schemas.records import REJECT
    from clipcurate.sinks.shards import parquet_bytes

    url, cap = "http://example.test/a.jpg", "a real caption"
    uid = make_uid(url, cap)
    recs = [{"uid": uid, "url": url, "caption": cap, "source": f"part-{i}.parquet", "offset": 7 - i,
             "source_format": "parquet", "stage": "dedupe_url", "reason": "dup_url"} for i in range(4)]
    first = parquet_bytes(recs, REJECT)
    assert first == parquet_bytes(list(reversed(recs)), REJECT)
    assert first == parquet_bytes(recs[2:] + recs[:2], REJECT)
    table = pq.read_table(io.BytesIO(first))
    assert table.column("source").to_pylist() == [f"part-{i}.parquet" for i in range(4)]
