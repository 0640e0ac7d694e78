"""Command line: ``python beam_runner.py {demo,run,build-metadata,train,eval-zeroshot,
eval-linear-probe,report} ...``.

``run``, ``demo`` and ``build-metadata`` pass the flags they do not know to Beam's
``PipelineOptions`` (``--runner``, ``--direct_num_workers``, Dataflow/Spark/Flink flags), but
only flags that some ``PipelineOptions`` class defines: anything else is an error (exit 2)
that names the flag and suggests the closest one.  Arguments after a bare ``--`` go to Beam
unchecked (custom pipeline options of a runner plugin).
"""
from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import sys

from clipcurate.config import STAGES, RunConfig, read_config_file

BEAM_COMMANDS = ("run", "demo", "build-metadata")  # subcommands that take Beam options


def _run_parser(sub) -> None:
    p = sub.add_parser("run", help="curate candidates into shards", allow_abbrev=False,
                       description="Run the curation pipeline. Unknown --flags go to Beam.")
    p.add_argument("--config", help="TOML or JSON run config (RunConfig sections)")
    p.add_argument("--input", action="append", default=None, help="input path or glob (repeatable)")
    p.add_argument("--input-format", choices=["auto", "parquet", "csv", "tsv", "jsonl", "warc", "wat", "mmc4"])
    p.add_argument("--url-col")
    p.add_argument("--caption-col")
    p.add_argument("--columns", help="comma-separated names for a headerless csv/tsv, e.g. caption,url")
    p.add_argument("--extra-cols", help="comma-separated input columns carried into the output")
    p.add_argument("--metadata", help="MetaCLIP metadata: JSON list or one entry per line")
    p.add_argument("--output", help="output directory (local path or gs://...)")
    p.add_argument("--until", choices=STAGES, help="stop after this stage; write its records as Parquet")
    p.add_argument("--after", choices=STAGES[:-1],
                   help="staged run: --input is an earlier run's until_STAGE Parquet; start after STAGE")
    p.add_argument("--seed", type=int)
    p.add_argument("--allow-loopback", action="store_true", help="let the downloader fetch 127.0.0.1 (tests)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config value, e.g. --set download.timeout=5")
    p.add_argument("--print-config", action="store_true", help="print the effective config (JSON) and exit")
    _verbose(p)


def _verbose(p) -> None:
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="show INFO logs")


def config_from_args(args) -> RunConfig:
    cfg = RunConfig.load(args.config) if args.config else RunConfig()
    sets = list(args.set)
    simple = {"ingest.input_format": args.input_format, "ingest.url_col": args.url_col,
              "ingest.caption_col": args.caption_col, "balance.metadata": args.metadata,
              "sink.output": args.output, "until": args.until, "after": args.after, "seed": args.seed}
    sets += [f"{k}={v}" for k, v in simple.items() if v is not None]
    cfg = cfg.with_overrides(sets)
    if args.input:
        cfg.ingest.inputs = list(args.input)
    if args.columns:
        cfg.ingest.columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    if args.extra_cols:
        cfg.ingest.extra_cols = [c.strip() for c in args.extra_cols.split(",") if c.strip()]
    if args.allow_loopback:
        cfg.download.allow_loopback = True
    if not _output_given(args):
        raise ValueError("run needs an output directory: give --output DIR (or sink.output in --config)")
    return cfg


def _output_given(args) -> bool:
    """Whether the user named the output (flag, --set or config file) rather than relying on a default."""
    if args.output or any(s.split("=", 1)[0].strip() == "sink.output" for s in args.set):
        return True
    data = read_config_file(args.config) if args.config else {}
    return isinstance(data.get("sink"), dict) and "output" in data["sink"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beam_runner.py", allow_abbrev=False,
                                     description="clipcurate: curate image-text data for CLIP with Beam")
    parser.add_argument("-v", "--verbose", action="store_true", help="show INFO logs")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="end-to-end demo on bundled data, offline", allow_abbrev=False)
    demo.add_argument("--output", default="demo_out")
    _verbose(demo)
    _run_parser(sub)
    rep = sub.add_parser("report", help="(re)write report.html for an output directory")
    rep.add_argument("output")
    _verbose(rep)
    _optional_parsers(sub)
    return parser


def _optional_parsers(sub) -> None:
    """Subcommands owned by other modules (metadata builder, trainer)."""
    from clipcurate.balancing import cli as balancing_cli
    from clipcurate.trainer import cli as trainer_cli
    balancing_cli.add_parser(sub)
    trainer_cli.add_parsers(sub)


def beam_option_parser() -> argparse.ArgumentParser:
    """An argparse parser with the flags of every ``PipelineOptions`` subclass defined so far."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser, seen, todo = _BeamArgumentParser(allow_abbrev=False), set(), [PipelineOptions]
    while todo:
        for cls in todo.pop().__subclasses__():
            if cls not in seen:
                seen.add(cls)
                todo.append(cls)
                try:
                    cls._add_argparse_args(parser)  # noqa: SLF001 - how PipelineOptions builds its parser
                except argparse.ArgumentError:  # a flag two classes define (Beam keeps the first)
                    pass
    return parser


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings]  # noqa: SLF001


def check_beam_args(beam_args: list[str], ours: argparse.ArgumentParser, takes_beam: bool) -> str | None:
    """None when every argument is a Beam option (with its value); else a one-line error that
    names the first unknown one and suggests the closest flag of ours or Beam's."""
    beam = beam_option_parser() if takes_beam else None
    unknown = beam.parse_known_args(beam_args)[1] if beam else list(beam_args)
    if not unknown:
        return None
    bad = unknown[0]
    if not bad.startswith("-"):
        return f"unexpected argument {bad!r}"
    name = bad.split("=", 1)[0]
    known = _option_strings(ours) + (_option_strings(beam) if beam else [])
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    where = "neither ours nor a Beam pipeline option" if beam else "not an option of this command"
    return f"unrecognized argument {name} ({where}){hint}"


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for a in parser._actions:  # noqa: SLF001
        if isinstance(a, argparse._SubParsersAction):  # noqa: SLF001
            return a.choices[command]
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough = []
    if "--" in argv:  # everything after a bare -- goes to Beam unchecked
        i = argv.index("--")
        argv, passthrough = argv[:i], argv[i + 1:]
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    # force: an import (e.g. Beam's GCP clients) may have put a WARNING handler on the root logger
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", force=True)
    takes_beam = args.command in BEAM_COMMANDS
    error = check_beam_args(beam_args, _subparser(parser, args.command), takes_beam)
    if error is None and passthrough and not takes_beam:
        error = f"{args.command} takes no Beam options (after --)"
    if error:
        _subparser(parser, args.command).error(error)  # exit 2 with usage
    try:
        return _dispatch(args, beam_args + passthrough)
    except (ValueError, OSError, ImportError) as e:  # bad config, input or install: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


def _dispatch(args, beam_args: list[str]) -> int:
    if args.command == "demo":
        from clipcurate.demo import run_demo
        manifest = run_demo(args.output, beam_args)
        return 0 if manifest["total_samples"] > 0 else 1
    if args.command == "run":
        cfg = config_from_args(args)
        if args.print_config:
            print(json.dumps(cfg.to_dict(), indent=2, ensure_ascii=False))
            return 0
        from clipcurate.demo import format_funnel
        from clipcurate.pipelines.curate import run
        manifest = run(cfg, beam_args)
        print(format_funnel(manifest))
        return 0
    if args.command == "report":
        from clipcurate.sinks.report import write_report
        print(write_report(args.output))
        return 0
    if args.command == "build-metadata":
        from clipcurate.balancing import cli as balancing_cli
        args.beam_args = beam_args or None
        return balancing_cli.run(args)
    from clipcurate.trainer import cli as trainer_cli
    return trainer_cli.run(args)
