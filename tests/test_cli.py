"""The command line refuses what it does not understand: unknown flags (neither ours nor Beam's),
`run` without an output, config errors as one line; `-v` shows INFO logs; `--print-config`."""
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from clipcurate.cli import build_parser, check_beam_args, main
from clipcurate.config import RunConfig
from clipcurate.testing.shared_data import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
INPUT = SHARED_DATA / "img2dataset-tests" / "test_1000.parquet"


def _fails(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_mistyped_flag_is_an_error_with_a_suggestion(tmp_path, capsys):
    err = _fails(["run", "--input", str(INPUT), "--ouptut", str(tmp_path / "o")], capsys)
    assert "unrecognized argument --ouptut" in err and "did you mean --output?" in err
    assert not (tmp_path / "o").exists()


def test_mistyped_beam_flag_suggests_the_beam_flag(tmp_path, capsys):
    err = _fails(["run", "--input", str(INPUT), "--output", str(tmp_path), "--direct_num_worker=2"], capsys)
    assert "unrecognized argument --direct_num_worker " in err and "did you mean --direct_num_workers?" in err


def test_beam_options_pass_with_their_values():
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    ok = ["--runner=DataflowRunner", "--project", "p", "--region=us-central1", "--no_auth",
          "--experiments=a", "--experiments", "b", "--temp_location", "gs://b/tmp",
          "--dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1",
          "--direct_num_workers=2", "--direct_running_mode=multi_processing",
          "--flink_master=host:8081", "--environment_type=LOOPBACK", "--spark_master_url=spark://h:7077"]
    assert check_beam_args(ok, run, takes_beam=True) is None
    assert check_beam_args(["--no_auth", "stray"], run, takes_beam=True) == "unexpected argument 'stray'"
    # commands without a pipeline take no Beam options at all
    assert "not an option of this command" in check_beam_args(["--runner=X"], run, takes_beam=False)


def test_trainer_command_refuses_unknown_flags(capsys):
    err = _fails(["train", "--shards", "x", "--output", "y", "--setps", "5"], capsys)
    assert "unrecognized argument --setps" in err and "did you mean --steps?" in err


def test_double_dash_passes_custom_options_to_beam_unchecked(tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(["run", "--input", str(INPUT), "--output", str(out), "--until", "ingest", "--",
               "--my_plugin_option=1"])
    assert rc == 0
    assert json.loads((out / "manifest.json").read_text())["stages"]["ingest"]["in"] == 1000


def test_run_requires_an_output(tmp_path, capsys):
    assert main(["run", "--input", str(INPUT)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: run needs an output directory: give --output DIR (or sink.output in --config)"
    # sink.output in the config file (or --set) is enough
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[sink]\noutput = "{tmp_path / "from_cfg"}"\n')
    assert main(["run", "--input", str(INPUT), "--config", str(cfg), "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["sink"]["output"] == str(tmp_path / "from_cfg")
    assert main(["run", "--input", str(INPUT), "--set", f"sink.output={tmp_path}", "--print-config"]) == 0


def test_print_config_is_the_effective_config(tmp_path, capsys):
    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps({"seed": 7, "download": {"timeout": 3.5}}))
    rc = main(["run", "--config", str(cfg), "--input", str(INPUT), "--output", str(tmp_path / "o"),
               "--set", "download.retries=1", "--until", "balance", "--print-config"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    loaded = RunConfig.from_dict(printed)
    assert (loaded.seed, loaded.download.timeout, loaded.download.retries, loaded.until) == (7, 3.5, 1, "balance")
    assert loaded.ingest.inputs == [str(INPUT)] and loaded.sink.output == str(tmp_path / "o")
    assert not (tmp_path / "o").exists()  # printed, not run


@pytest.mark.parametrize("content,suffix,needle", [
    ("[sink\noutput = 1", ".toml", "run.toml"),                 # TOML syntax error
    ('{"download": {"timeout": "soon"}}', ".json", "download.timeout"),  # wrong type
    ('{"dowload": {}}', ".json", "dowload"),                     # unknown section
])
def test_config_errors_are_one_line(tmp_path, capsys, content, suffix, needle):
    cfg = tmp_path / f"run{suffix}"
    cfg.write_text(content)
    assert main(["run", "--config", str(cfg), "--input", str(INPUT), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0]


def test_missing_config_file_is_one_line(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path / "nope.toml"), "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.toml" in err[0]


def test_verbose_sets_info_even_when_an_import_added_a_root_handler(tmp_path, capsys):
    root = logging.getLogger()
    before = list(root.handlers), root.level
    logging.warning("an import that logs through the root logger adds a handler")
    try:
        main(["-v", "run", "--input", str(INPUT), "--output", str(tmp_path), "--print-config"])
        assert root.level == logging.INFO
        main(["run", "--input", str(INPUT), "--output", str(tmp_path), "--print-config", "-v"])
        assert root.level == logging.INFO
        main(["run", "--input", str(INPUT), "--output", str(tmp_path), "--print-config"])
        assert root.level == logging.WARNING
    finally:
        root.handlers[:], root.level = before


def test_verbose_shows_info_logs_in_a_real_run(tmp_path):
    """Subprocess: `-v` shows INFO lines (Beam's and ours); without it there are none."""
    def run(*flags):
        cmd = [sys.executable, str(ROOT / "beam_runner.py"), *flags, "run", "--input", str(INPUT),
               "--until", "ingest", "--output", str(tmp_path / ("v" if flags else "q"))]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stderr
    assert "INFO clipcurate.sinks.report: report written" in run("-v")
    assert "INFO" not in run()
