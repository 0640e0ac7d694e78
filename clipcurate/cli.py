"""Command line: ``python beam_runner.py {demo,run,build-metadata,train,eval-zeroshot,
eval-linear-probe,report} ...``.

Arguments the subcommand does not know are passed to Beam's ``PipelineOptions``, so
``--runner``, ``--direct_num_workers``, Dataflow/Spark/Flink flags work as in any Beam job.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from clipcurate.config import STAGES, RunConfig


def _run_parser(sub) -> None:
    p = sub.add_parser("run", help="curate candidates into shards", allow_abbrev=False,
                       description="Run the curation pipeline. Unknown --flags go to Beam.")
    p.add_argument("--config", help="TOML or JSON run config (RunConfig sections)")
    p.add_argument("--input", action="append", default=None, help="input path or glob (repeatable)")
    p.add_argument("--input-format", choices=["auto", "parquet", "csv", "tsv", "jsonl", "warc", "wat"])
    p.add_argument("--url-col")
    p.add_argument("--caption-col")
    p.add_argument("--columns", help="comma-separated names for a headerless csv/tsv, e.g. caption,url")
    p.add_argument("--extra-cols", help="comma-separated input columns carried into the output")
    p.add_argument("--metadata", help="MetaCLIP metadata: JSON list or one entry per line")
    p.add_argument("--output", help="output directory (local path or gs://...)")
    p.add_argument("--until", choices=STAGES, help="stop after this stage; write its records as Parquet")
    p.add_argument("--seed", type=int)
    p.add_argument("--allow-loopback", action="store_true", help="let the downloader fetch 127.0.0.1 (tests)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config value, e.g. --set download.timeout=5")


def config_from_args(args) -> RunConfig:
    cfg = RunConfig.load(args.config) if args.config else RunConfig()
    sets = list(args.set)
    simple = {"ingest.input_format": args.input_format, "ingest.url_col": args.url_col,
              "ingest.caption_col": args.caption_col, "balance.metadata": args.metadata,
              "sink.output": args.output, "until": args.until, "seed": args.seed}
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
    return cfg


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="beam_runner.py", allow_abbrev=False,
                                     description="clipcurate: curate image-text data for CLIP with Beam")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="end-to-end demo on bundled data, offline", allow_abbrev=False)
    demo.add_argument("--output", default="demo_out")
    _run_parser(sub)
    rep = sub.add_parser("report", help="(re)write report.html for an output directory")
    rep.add_argument("output")
    _optional_parsers(sub)
    return parser


def _optional_parsers(sub) -> None:
    """Subcommands owned by other modules (metadata builder, trainer)."""
    from clipcurate.balancing import cli as balancing_cli
    from clipcurate.trainer import cli as trainer_cli
    balancing_cli.add_parser(sub)
    trainer_cli.add_parsers(sub)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command not in ("run", "demo", "build-metadata") and beam_args:
        parser.error(f"unrecognized arguments: {' '.join(beam_args)}")
    try:
        return _dispatch(args, beam_args)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _dispatch(args, beam_args: list[str]) -> int:
    if args.command == "demo":
        from clipcurate.demo import run_demo
        manifest = run_demo(args.output, beam_args)
        return 0 if manifest["total_samples"] > 0 else 1
    if args.command == "run":
        from clipcurate.demo import format_funnel
        from clipcurate.pipelines.curate import run
        manifest = run(config_from_args(args), beam_args)
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
