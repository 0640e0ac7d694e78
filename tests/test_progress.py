"""The local progress view: per-stage lines while a pipeline runs, off when not a terminal,
and never a byte of difference in the outputs."""
from __future__ import annotations

import collections
import io
import os
from pathlib import Path

import apache_beam as beam
import pytest

from clipcurate.config import RunConfig
from clipcurate.pipelines import progress
from clipcurate.pipelines.curate import run
from clipcurate.dedupe.keep import DUP_OF, DropAnnotated
from clipcurate.pipelines.stage import apply_stage
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
LAION = DATA / "img2dataset-tests" / "test_1000.parquet"


class _Tty(io.StringIO):
    def isatty(self):
        return True


def _count_pipeline(n: int, args=()) -> None:
    """n records through a real stage DoFn (importable by worker processes); odd ones dropped."""
    recs = [{"uid": f"{i:04d}", **({DUP_OF: "0000"} if i % 2 else {})} for i in range(n)]
    with beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(
            ["--runner=FnApiRunner", *args])) as p:
        apply_stage(p | beam.Create(recs), "Odd", DropAnnotated("filter", "near_dup"))


def test_off_when_stderr_is_not_a_terminal(monkeypatch):
    monkeypatch.delenv(progress.ENV_FORCE, raising=False)
    stream = io.StringIO()
    with progress.live({}, stream):
        assert progress.ENV_DIR not in os.environ
        assert progress.bundle_progress("filter") is None
        _count_pipeline(10)
    assert stream.getvalue() == ""


def test_terminal_shows_one_line_per_stage_with_drops(monkeypatch):
    monkeypatch.delenv(progress.ENV_FORCE, raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # lines are cut to the terminal's width
    stream = _Tty()
    with progress.live({}, stream):
        _count_pipeline(1001)
    assert progress.ENV_DIR not in os.environ  # restored
    last = stream.getvalue().rsplit("\x1b[2K", 1)[-1]
    assert last.startswith("filter") and "in      1,001" in last and "kept        501" in last
    assert "near_dup=500" in last


def test_forced_on_counts_from_worker_processes(monkeypatch):
    monkeypatch.setenv(progress.ENV_FORCE, "1")
    stream = io.StringIO()
    with progress.live({}, stream):
        _count_pipeline(400, ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    lines = stream.getvalue().splitlines()
    assert lines and all(line.startswith("progress ") for line in lines)  # plain: no cursor codes
    assert "in        400" in lines[-1] and "near_dup=200" in lines[-1]


def test_view_rate_eta_and_download_statuses():
    now = [100.0]
    view = progress.View({"ingest": ("files_in", 4)}, clock=lambda: now[0])
    c = {"ingest": collections.Counter({"in": 0, "kept": 0, "files_in": 0})}
    view.lines(c)
    now[0] = 110.0
    totals = {"ingest": collections.Counter({"in": 500, "kept": 480, "files_in": 1, "dropped:bad_row": 20}),
              "download": collections.Counter({"in": 480, "kept": 400, "dropped:http_404": 50,
                                               "dropped:timeout": 30})}
    ingest, download = view.lines(totals)
    assert ingest.startswith("ingest") and "50.0/s" in ingest
    assert "files_in 1/4" in ingest and "ETA 0:00:30" in ingest and "bad_row=20" in ingest
    assert download.startswith("download") and "ok=400 http_404=50 timeout=30" in download


def test_read_totals_sums_processes_and_skips_partial_files(tmp_path):
    (tmp_path / "1-a.json").write_text('{"filter": {"in": 3, "kept": 2}}')
    (tmp_path / "2-b.json").write_text('{"filter": {"in": 4, "kept": 4}, "download": {"in": 1}}')
    (tmp_path / "3-c.json").write_text('{"filter": ')  # being replaced
    totals = progress.read_totals(str(tmp_path))
    assert totals == {"filter": {"in": 7, "kept": 6}, "download": {"in": 1}}


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.skipif(not LAION.exists(), reason=f"test data not found at {LAION}")
def test_progress_changes_no_output_byte(tmp_path, monkeypatch):
    """A text-first run on real LAION rows, with and without the view: same files, same bytes."""
    outs = {}
    for name, force in (("off", "0"), ("on", "1")):
        monkeypatch.setenv(progress.ENV_FORCE, force)
        cfg = RunConfig()
        cfg.ingest.inputs = [str(LAION)]
        cfg.ingest.url_col, cfg.ingest.caption_col = "url", "caption"
        cfg.until, cfg.sink.report, cfg.sink.keep_rejects = "filter", False, True
        cfg.sink.output = str(tmp_path / "out")  # same path: the config (with it) is in the manifest
        err = io.StringIO()
        monkeypatch.setattr("sys.stderr", err)
        manifest = run(cfg, [])
        monkeypatch.undo()
        outs[name] = _files(tmp_path / "out")
        if force == "1":
            shown = err.getvalue()
            ingest = manifest["stages"]["ingest"]
            assert f"in {ingest['in']:>10,}" in shown and "files_in 1/1" in shown
            assert any(line.startswith("progress filter") for line in shown.splitlines())
    assert outs["on"] == outs["off"] and outs["on"]
