"""Staged runs: text-first job -> download job -> score-and-write job, each reading the previous
job's ``until_*`` Parquet, give the same shard bytes as one job (the demo pipeline, loopback web)."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from clipcurate.cli import main
from clipcurate.config import RunConfig
from clipcurate.demo import demo_config, demo_dir, serve_directory, write_candidates
from clipcurate.pipelines.curate import run
from clipcurate.pipelines.resume import records_from_table
from clipcurate.testing.shared_data import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]


def _files(out: Path, sub: str, pattern: str) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / sub).glob(pattern))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("staged")
    with serve_directory(demo_dir()) as url:
        cands = write_candidates(url, base / "candidates.parquet")
        one = run(demo_config(str(base / "one"), str(cands)), [], report=False)
        # job 1: text stages only
        cfg = demo_config(str(base / "s1"), str(cands))
        cfg.until, cfg.sink.report = "balance", False
        m1 = run(cfg, [], report=False)
        # job 2 through the command line: download and the image dedupes, from job 1's Parquet
        full = demo_config("unused", str(cands))
        full.sink.report = False
        (base / "cfg.json").write_text(json.dumps(full.to_dict()))
        rc = main(["run", "--config", str(base / "cfg.json"), "--after", "balance", "--until", "decontam",
                   "--input", str(base / "s1" / "until_balance" / "*.parquet"), "--output", str(base / "s2")])
        assert rc == 0
        m2 = json.loads((base / "s2" / "manifest.json").read_text())
        # job 3: score, score filter and write, from job 2's Parquet (which carries the image bytes)
        cfg = demo_config(str(base / "s3"), str(base / "s2" / "until_decontam" / "*.parquet"))
        cfg.after = "decontam"
        m3 = run(cfg, [], report=False)
    return base, one, (m1, m2, m3)


def test_staged_run_writes_the_same_shards_as_one_job(runs):
    base, one, (m1, m2, m3) = runs
    assert one["total_samples"] > 0
    tars = _files(base / "one", "shards", "*.tar")
    assert tars and tars == _files(base / "s3", "shards", "*.tar")
    assert _files(base / "one", "parquet", "*.parquet") == _files(base / "s3", "parquet", "*.parquet")
    assert [s["tar_sha256"] for s in one["shards"]] == [s["tar_sha256"] for s in m3["shards"]]


def test_staged_counts_chain_and_match_one_job(runs):
    _, one, (m1, m2, m3) = runs
    assert list(m1["stages"])[-2] == "balance"
    assert list(m2["stages"])[0] == "resume" and "balance" not in m2["stages"]
    assert list(m3["stages"])[:2] == ["resume", "score"]
    assert m2["stages"]["resume"]["in"] == m1["stages"]["balance"]["kept"]
    assert m3["stages"]["resume"]["in"] == m2["stages"]["write"]["kept"]
    for m in (m1, m2, m3):
        assert all(c["balanced"] for c in m["stages"].values())
    staged = {**m1["stages"], **m2["stages"], **m3["stages"]}
    for stage in ("ingest", "balance", "download", "dedupe_content", "score", "score_filter"):
        assert staged[stage] == one["stages"][stage], stage


def test_until_an_image_stage_keeps_image_bytes(runs):
    base = runs[0]
    rows = [r for f in sorted((base / "s2" / "until_decontam").glob("*.parquet"))
            for r in records_from_table(pq.read_table(f))]
    assert rows and all(r["image"][:3] == b"\xff\xd8\xff" and r["status"] == "ok" for r in rows)
    assert all(hashlib.sha256(r["image"]).hexdigest() == r["sha256"] for r in rows)


def test_after_a_stage_refuses_parquet_of_another_stage(runs, tmp_path):
    base = runs[0]
    cfg = RunConfig(after="decontam")
    cfg.ingest.inputs = [str(base / "s1" / "until_balance" / "*.parquet")]
    cfg.sink.output = str(tmp_path)
    with pytest.raises(ValueError, match="--after decontam reads until_decontam"):
        run(cfg, [], report=False)


def test_after_must_come_before_until():
    with pytest.raises(ValueError, match="must be a stage after"):
        RunConfig(after="download", until="balance")


def test_text_and_download_jobs_do_not_import_the_model_stack(runs):
    """Jobs that stop before scoring build without torch/open_clip (CPU workers need not have them)."""
    base = runs[0]
    code = f"""
import sys, apache_beam as beam
from clipcurate.cli import build_parser
from clipcurate.config import RunConfig
from clipcurate.pipelines.curate import build
build_parser()
text = RunConfig.load({str(base / 'cfg.json')!r})
text.until, text.sink.output = "balance", {str(base / 'dry1')!r}
build(beam.Pipeline(), text)
dl = RunConfig.load({str(base / 'cfg.json')!r})
dl.after, dl.until = "balance", "decontam"
dl.ingest.inputs = [{str(base / 's1' / 'until_balance' / '*.parquet')!r}]
dl.sink.output = {str(base / 'dry2')!r}
build(beam.Pipeline(), dl)
print(sorted(m for m in ("torch", "torchvision", "open_clip", "sklearn") if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


# -- the reader's pure core, without Beam --------------------------------------------------------

DATA = SHARED_DATA


def test_records_round_trip_through_until_parquet():
    import io

    import numpy as np

    from clipcurate.pipelines.resume import until_schema
    from clipcurate.schemas.records import new_candidate
    from clipcurate.schemas.uid import make_uid
    from clipcurate.sinks.shards import parquet_bytes

    jpg = next(iter(sorted((DATA / "open-images-cc-test-images").rglob("*.jpg")))).read_bytes()
    rows = pq.read_table(DATA / "img2dataset-tests" / "test_1000.parquet").to_pylist()[:50]
    recs = []
    for i, r in enumerate(rows):
        rec = new_candidate(url=r["URL"], caption=r["TEXT"], source="test_1000.parquet", offset=i,
                            source_format="parquet", uid=make_uid(r["URL"], r["TEXT"]),
                            extra={"similarity": r.get("similarity")} if i % 2 else None)
        # float32 values, as the stages produce them (fastText, CLIP)
        rec.update(language="en", language_score=float(np.float32(0.5 + i / 200)), matched=[i, i + 1])
        recs.append(rec)
    def expected(rs):  # a null field reads back absent ("absent or None", schemas/records.py)
        return [{k: v for k, v in r.items() if v is not None} for r in sorted(rs, key=lambda r: r["uid"])]

    assert any(r["extra"] is None for r in recs) and any(r["extra"] for r in recs)
    text = list(records_from_table(pq.read_table(io.BytesIO(parquet_bytes(recs, until_schema("balance"))))))
    assert text == expected(recs)
    images = [dict(r, status="ok", sha256=hashlib.sha256(jpg).hexdigest(), width=10, height=20,
                   image_format="jpeg", http_status=200, image=jpg) for r in recs]
    back = list(records_from_table(pq.read_table(io.BytesIO(parquet_bytes(images, until_schema("decontam"))))))
    assert back == expected(images)


def test_steps_after_and_kind_checks():
    from clipcurate.pipelines.resume import check_kind, steps_after, until_schema

    steps = [("ingest",), ("filter",), ("balance",), ("download",), ("score",)]
    assert steps_after(steps, None) == steps
    assert steps_after(steps, "filter") == [("balance",), ("download",), ("score",)]
    assert steps_after(steps, "near_dup") == [("score",)]
    raw = pq.read_schema(DATA / "img2dataset-tests" / "test_1000.parquet")
    with pytest.raises(ValueError, match="not clipcurate output"):
        check_kind(raw, "balance", "test_1000.parquet")
    check_kind(until_schema("dedupe_url"), "balance", "x")  # text stages share the candidate schema
    with pytest.raises(ValueError, match="'candidate' records, but --after download"):
        check_kind(until_schema("balance"), "download", "x")
