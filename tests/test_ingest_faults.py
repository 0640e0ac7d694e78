"""Input faults are data: corrupt, truncated, foreign, column-less, locked and vanished files
among good ones (all made from the real files in ../shared/data) are counted file-level
drops named in the manifest, the rejects and the end-of-run summary; the good rows are all
curated.  on_bad_file=fail and 'no readable input' end with one clear line."""
from __future__ import annotations

import collections
import gzip
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import clipcurate.ingest.transform as transform
from clipcurate.config import RunConfig
from clipcurate.demo import format_funnel
from clipcurate.ingest import IngestConfig, InputRead, read_file
from clipcurate.pipelines.curate import run
from clipcurate.testing.shared_data import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
DATA = SHARED_DATA
LAION = DATA / "img2dataset-tests" / "test_1000.parquet"
CC_WARC = DATA / "resiliparse-warc" / "warcfile.warc.gz"
CUT_AT = 50_000  # inside the response record at byte 48321 (see test_ingest_bad_input.py)
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

BAD = {"cut.parquet": "bad_file", "random.warc.gz": "bad_file", "nourl.parquet": "bad_file",
       "badgzip.csv.gz": "bad_file", "gone.parquet": "unreadable_file"}


def make_inputs(d: Path) -> Path:
    """Good and bad inputs in ``d``: every bad one derived from a real file."""
    d.mkdir(parents=True, exist_ok=True)
    laion = LAION.read_bytes()
    shutil.copy(LAION, d / "good.parquet")
    shutil.copy(CC_WARC, d / "good.warc.gz")
    (d / "cut.parquet").write_bytes(laion[: len(laion) // 2])            # footer gone
    (d / "random.warc.gz").write_bytes(random.Random(0).randbytes(5000))  # not a WARC at all
    (d / "cut.warc.gz").write_bytes(CC_WARC.read_bytes()[:CUT_AT])        # real WARC cut mid-gzip
    pq.write_table(pq.read_table(LAION).drop(["URL"]), d / "nourl.parquet")
    (d / "badgzip.csv.gz").write_bytes(gzip.compress(b"url,caption\n")[:4] + b"\x00" * 64)
    shutil.copy(LAION, d / "gone.parquet")                                # deleted after listing
    return d


def _vanish_after_listing(monkeypatch, path: Path):
    real = transform._expand

    def expand(patterns):
        out = real(patterns)
        path.unlink()
        return out
    monkeypatch.setattr(transform, "_expand", expand)


# -- pure core: one file, faults as data --------------------------------------------------
def test_input_read_statuses_on_corrupt_real_files(tmp_path):
    d = make_inputs(tmp_path / "in")
    (d / "gone.parquet").unlink()
    cfg = IngestConfig()
    for name, status in BAD.items():
        read = InputRead(str(d / name), name, cfg)
        pairs = list(read)
        assert [s for s, _ in pairs] == [status], name
        assert read.info["status"] == status and read.info["rows"] == 1
        err = read.info["error"]
        assert err.startswith(f"{name}: ") and str(d) not in err and pairs[0][1]["error"] == err
        assert pairs[0][1]["source"] == name
    assert "no url column 'url'" in InputRead(str(d / "nourl.parquet"), "n", cfg).run()["error"]
    assert "FileNotFoundError" in InputRead(str(d / "gone.parquet"), "g", cfg).run()["error"]

    # a WARC cut mid-gzip: the records before the cut are kept, the file is truncated_file
    read = InputRead(str(d / "cut.warc.gz"), "cut.warc.gz", cfg)
    pairs = list(read)
    before = [(s, r["url"]) for s, r in read_file(str(CC_WARC), cfg) if r["offset"] < 48321]
    assert [(s, r["url"]) for s, r in pairs[:-1]] == before and before
    assert pairs[-1][0] == "truncated_record" and read.info["status"] == "truncated_file"
    assert read.info["rows"] == len(before) + 1 and read.info["sha256"]

    good = InputRead(str(d / "good.parquet"), "good.parquet", cfg).run()
    assert good["status"] == "ok" and good["rows"] == 1000 and "error" not in good


def test_retry_gives_the_same_output(tmp_path):
    """A Beam retry re-reads the file: the same bytes must give the same pairs and status."""
    d = make_inputs(tmp_path / "in")
    for name in ("cut.warc.gz", "cut.parquet", "good.parquet"):
        a, b = InputRead(str(d / name), name, IngestConfig()), InputRead(str(d / name), name, IngestConfig())
        assert list(a) == list(b) and a.info == b.info


def test_parquet_unreadable_midway_keeps_rows_before(tmp_path, monkeypatch):
    """A fault after some rows (here: a column chunk corrupted in the real file) keeps the rows
    read so far and ends with one truncated_record; the file is truncated_file."""
    path = tmp_path / "two_groups.parquet"
    pq.write_table(pq.read_table(LAION), path, row_group_size=500)
    meta = pq.ParquetFile(path).metadata
    col = meta.row_group(1).column(1)  # TEXT of the second row group
    data = bytearray(path.read_bytes())
    start = col.data_page_offset + 20
    data[start:start + 200] = random.Random(1).randbytes(200)
    path.write_bytes(bytes(data))
    read = InputRead(str(path), "two_groups.parquet", IngestConfig())
    pairs = list(read)
    statuses = collections.Counter(s for s, _ in pairs)
    assert read.info["status"] == "truncated_file" and statuses["truncated_record"] == 1
    assert pairs[-1][0] == "truncated_record" and pairs[-1][1]["offset"] == 500
    urls = [u.strip() for u in pq.read_table(LAION).column("URL").to_pylist()]
    assert [r["url"] for s, r in pairs[:500]] == urls[:500]
    assert "unreadable after row 499" in read.info["error"] and str(tmp_path) not in read.info["error"]


@pytest.mark.skipif(IS_ROOT, reason="root reads a chmod 000 file")
def test_permission_denied_is_unreadable_file(tmp_path):
    path = tmp_path / "locked.parquet"
    shutil.copy(LAION, path)
    path.chmod(0)
    try:
        info = InputRead(str(path), "locked.parquet", IngestConfig()).run()
    finally:
        path.chmod(0o644)
    assert info["status"] == "unreadable_file" and "PermissionError" in info["error"]


def test_permission_denied_as_root_too(tmp_path, monkeypatch):
    """Root reads a chmod 000 file, so the OS error is injected where the file is opened."""
    import clipcurate.ingest.inputs as inputs
    path = tmp_path / "locked.parquet"
    shutil.copy(LAION, path)

    def denied(p, *a, **k):
        raise PermissionError(13, "Permission denied", p)
    monkeypatch.setattr(inputs.FileSystems, "open", denied)
    info = InputRead(str(path), "locked.parquet", IngestConfig()).run()
    assert info["status"] == "unreadable_file" and info["sha256"] is None
    assert info["error"] == "locked.parquet: PermissionError: [Errno 13] Permission denied: 'locked.parquet'"


# -- the pipeline: good rows curated, bad files named --------------------------------------
def test_run_over_good_and_corrupt_inputs(tmp_path, monkeypatch):
    d = make_inputs(tmp_path / "in")
    _vanish_after_listing(monkeypatch, d / "gone.parquet")
    cfg = RunConfig(until="ingest")
    cfg.ingest.inputs = [str(d / "*")]
    cfg.sink.output = str(tmp_path / "out")
    cfg.sink.keep_rejects = True
    manifest = run(cfg, [], report=False)

    inputs = {i["source"]: i for i in manifest["inputs"]}
    assert set(inputs) == set(BAD) | {"good.parquet", "good.warc.gz", "cut.warc.gz"}
    for name, status in BAD.items():
        assert inputs[name]["status"] == status and inputs[name]["error"].startswith(name)
    assert inputs["cut.warc.gz"]["status"] == "truncated_file"
    assert inputs["good.parquet"]["status"] == inputs["good.warc.gz"]["status"] == "ok"

    # every good row is curated: the good files in full, the truncated file up to its cut
    cfg1 = IngestConfig()
    want = {(r["url"], r["caption"]) for name in ("good.parquet", "good.warc.gz", "cut.warc.gz")
            for s, r in read_file(str(d / name), cfg1) if s == "ok"}
    rows = pq.read_table(tmp_path / "out" / "until_ingest").to_pylist()
    assert {(r["url"], r["caption"]) for r in rows} == want and len(rows) == 1000 + 32 + 7

    ingest = manifest["stages"]["ingest"]
    assert ingest["balanced"] and ingest["dropped"]["bad_file"] == 4 and ingest["dropped"]["unreadable_file"] == 1
    assert ingest["other"] == {"files_in": 8, "files_ok": 2, "files_skipped": 5, "files_truncated": 1}
    assert ingest["in"] == sum(i["rows"] for i in manifest["inputs"])

    rejects = [r for f in (tmp_path / "out" / "rejects").glob("*.parquet") for r in pq.read_table(f).to_pylist()]
    file_drops = {r["source"]: (r["reason"], r["error"]) for r in rejects
                  if r["reason"] in ("bad_file", "unreadable_file")}
    assert {k: v[0] for k, v in file_drops.items()} == BAD
    faults = [r["uid"] for r in rejects if r["reason"] in ("bad_file", "unreadable_file", "truncated_record")]
    assert len(faults) == len(set(faults)) == 6  # 5 files + 1 truncated record: no shared uid
    assert all(str(d) not in r["error"] for r in rejects if r["error"])
    assert len(rejects) == sum(ingest["dropped"].values())

    summary = format_funnel(manifest)
    assert "skipped input files (5 of 8)" in summary and "input files read in part (1 of 8)" in summary
    for name in [*BAD, "cut.warc.gz"]:
        assert f"  {name}  {inputs[name]['status']}: " in summary


def test_on_bad_file_fail_stops_with_one_line_naming_the_file(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(LAION, d / "good.parquet")
    (d / "random.warc.gz").write_bytes(random.Random(0).randbytes(5000))
    cfg = RunConfig(until="ingest")
    cfg.ingest.inputs = [str(d / "*")]
    cfg.ingest.on_bad_file = "fail"
    cfg.sink.output = str(tmp_path / "out")
    with pytest.raises(ValueError) as err:
        run(cfg, [], report=False)
    msg = str(err.value)
    assert msg.startswith("bad input file: random.warc.gz is bad_file: random.warc.gz: not a readable WARC")
    assert "\n" not in msg and "while running" not in msg and str(d) not in msg

    # through the CLI: exit 2, one line on stderr, no traceback
    proc = subprocess.run([sys.executable, str(ROOT / "beam_runner.py"), "run", "--input", str(d / "*"),
                           "--set", "ingest.on_bad_file=fail", "--until", "ingest",
                           "--output", str(tmp_path / "out2")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [f"error: {msg}"] and "Traceback" not in proc.stderr


def test_no_readable_input_is_one_clear_line(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "random.warc.gz").write_bytes(random.Random(0).randbytes(5000))
    pq.write_table(pq.read_table(LAION).drop(["URL"]), d / "nourl.parquet")
    proc = subprocess.run([sys.executable, str(ROOT / "beam_runner.py"), "run", "--input", str(d / "*"),
                           "--until", "ingest", "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and line[0].startswith("error: no readable input: all 2 input file(s) were skipped")
    assert "nourl.parquet: bad_file" in line[0] and "random.warc.gz: bad_file" in line[0]


def test_on_bad_file_value_is_checked():
    with pytest.raises(ValueError, match="ingest.on_bad_file must be one of skip, fail, got 'ignore'"):
        IngestConfig(on_bad_file="ignore")
    with pytest.raises(ValueError, match="on_bad_file"):
        RunConfig().with_overrides(["ingest.on_bad_file=maybe"])
