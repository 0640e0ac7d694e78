"""The curation pipeline: raw candidates -> text stages -> download -> dedupe -> score -> shards.

``build(p, cfg, ...)`` wires the stage PTransforms (each returns ``{"kept", "counts",
"rejects"[, "stats"]}``) and the sinks; ``run(cfg, beam_args)`` executes it and returns
the manifest.  Text stages run before download (MetaCLIP's lesson: curate on text, fetch
only what survives).  ``cfg.until`` stops after a stage and writes its records as Parquet.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from clipcurate.config import RunConfig
from clipcurate.pipelines import progress
from clipcurate.schemas.records import CANDIDATE, DOWNLOADED, FINAL, REJECT
from clipcurate.sinks import manifest as mf
from clipcurate.sinks.examples import WriteExamples
from clipcurate.sinks.files import join, read_bytes
from clipcurate.sinks.shards import WriteShards


class _Collector:
    """Gathers each stage's counts, rejects and stats while the pipeline is built."""

    def __init__(self):
        self.counts, self.rejects, self.stats, self.order, self.files = [], [], [], [], []

    def take(self, result: dict[str, Any], *stages: str):
        self.order.extend(s for s in stages if s not in self.order)
        self.counts.append(result["counts"])
        if result.get("rejects") is not None:
            self.rejects.append(result["rejects"])
        if result.get("stats") is not None:
            self.stats.append(result["stats"])
        if result.get("files") is not None:
            self.files.append(result["files"])
        return result["kept"]


def _flatten(p, pcolls, label):
    if not pcolls:
        return p | f"{label}/Empty" >> beam.Create([])
    return tuple(pcolls) | label >> beam.Flatten()


def _text_steps(cfg: RunConfig):
    """(until-name, enabled, label, transform factory, stage names) for the text stages, in order."""
    from clipcurate.balancing.transforms import MetaClipCurate
    from clipcurate.balancing.worldwide import resolve_filter_languages
    from clipcurate.dedupe import CaptionNearDedupe, ExactUrlDedupe
    from clipcurate.filters.text import TextFilter
    from clipcurate.ingest import Ingest
    from clipcurate.safety import SafetyText

    keep, d = cfg.sink.keep_rejects, cfg.dedupe
    stats_dir = join(cfg.sink.output, "stats")
    return [
        ("ingest", True, "Ingest", lambda: Ingest(cfg.ingest, keep_rejects=keep), ("ingest",)),
        ("filter", True, "TextFilter",
         lambda: TextFilter(resolve_filter_languages(cfg.filter, cfg.balance), keep_rejects=keep), ("filter",)),
        ("safety_text", cfg.safety.text_enabled, "SafetyText", lambda: SafetyText(cfg.safety, keep_rejects=keep),
         ("safety_text",)),
        ("dedupe_url", d.url, "DedupeUrl", lambda: ExactUrlDedupe(keep_rejects=keep, keep=d.url_keep, seed=cfg.seed),
         ("dedupe_url",)),
        ("near_dup_caption", d.caption_near and d.mode == "caption", "NearDupCaption",
         lambda: CaptionNearDedupe(d, cfg.seed, keep_rejects=keep), ("near_dup_caption",)),
        ("balance", bool(cfg.balance.enabled and cfg.balance.metadata), "MetaCLIP",
         lambda: MetaClipCurate(cfg.balance, cfg.seed, keep_rejects=keep, stats_dir=stats_dir),
         ("match", "balance")),
    ]


def _image_steps(cfg: RunConfig):
    """The same for the stages that carry image bytes."""
    from clipcurate.dedupe import Decontaminate, ExactContentDedupe, NearDedupe
    from clipcurate.download import Download
    from clipcurate.safety import SafetyClip, SafetyImage
    from clipcurate import scoring  # Score needs the model stack: imported only when scoring runs

    keep, d, s = cfg.sink.keep_rejects, cfg.dedupe, cfg.scoring
    return [
        ("download", True, "Download", lambda: Download(cfg.download, keep_rejects=keep), ("download",)),
        ("safety_image", cfg.safety.image_enabled, "SafetyImage",
         lambda: SafetyImage(cfg.safety, keep_rejects=keep, digests_of="fetched bytes" if cfg.download.keep_original
                             else "stored bytes (re-encoded: set download.keep_original for MD5/SHA lists)"),
         ("safety_image",)),
        ("dedupe_content", d.content, "DedupeContent", lambda: ExactContentDedupe(keep_rejects=keep),
         ("dedupe_content",)),
        ("near_dup", d.image_near or (d.caption_near and d.mode != "caption"), "NearDup",
         lambda: NearDedupe(d, cfg.seed, keep_rejects=keep), ("near_dup",)),
        ("decontam", bool(d.eval_sets), "Decontaminate", lambda: Decontaminate(d, keep_rejects=keep),
         ("decontam",)),
        ("score", s.enabled, "Score", lambda: _score_step(scoring.Score(
            s, seed=cfg.seed, keep_rejects=keep, image_head=cfg.safety.nsfw_clip_head or None), s), ("score",)),
        ("safety_clip", bool(cfg.safety.nsfw_clip_head), "SafetyClip",
         lambda: SafetyClip(cfg.safety, scoring_enabled=s.enabled, keep_rejects=keep), ("safety_clip",)),
        ("score_filter", s.enabled and (s.threshold is not None or s.top_fraction is not None),
         "ScoreFilter", lambda: scoring.ScoreFilter(s, keep_rejects=keep), ("score_filter",)),
    ]


def _score_step(score, s):
    """The Score transform, with its accelerator resource hint (right fitting) when configured."""
    return score.with_resource_hints(accelerator=s.accelerator) if s.accelerator else score


def _apply_steps(p_or_recs, steps, cfg: RunConfig, c: "_Collector"):
    """Apply enabled steps in order; return (records, stopped) -- stopped when ``cfg.until`` was reached."""
    recs = p_or_recs
    for name, enabled, label, make, stages in steps:
        if enabled:
            recs = c.take(recs | label >> make(), *stages)
        if cfg.until == name:
            return recs, True
    return recs, False


def build(p: beam.Pipeline, cfg: RunConfig) -> None:
    """Add the whole curation pipeline to ``p``: text stages, then (unless stopped) image stages.
    The manifest's ``inputs`` (one entry per file, with its status) come from the ingest stage."""
    from clipcurate.pipelines.resume import ReadUntil, steps_after

    c = _Collector()
    recs = p  # a staged run (cfg.after) starts from an earlier run's until_* Parquet
    if cfg.after:
        recs = c.take(p | "Resume" >> ReadUntil(cfg.ingest.inputs, cfg.after), "resume")
        c.files.append(p | "ResumeInputs" >> beam.Create(_resume_inputs(cfg)))
    recs, stopped = _apply_steps(recs, steps_after(_text_steps(cfg), cfg.after), cfg, c)
    if stopped or not cfg.download.enabled:
        return _finish(p, cfg, c, recs, schema=CANDIDATE, tar=False)
    recs, stopped = _apply_steps(recs, steps_after(_image_steps(cfg), cfg.after), cfg, c)
    # until an image stage: keep the image bytes, so a later job can go on from there
    _finish(p, cfg, c, recs, schema=DOWNLOADED if stopped else FINAL,
            tar=cfg.sink.write_tar and not stopped)


def _resume_inputs(cfg: RunConfig) -> list[dict[str, Any]]:
    """Manifest inputs of a staged run (an earlier run's own Parquet): source, bytes, sha256."""
    from clipcurate.ingest.inputs import hash_file
    from clipcurate.ingest.transform import expand_inputs

    out = []
    for path, source, _ in expand_inputs(cfg.ingest):
        sha, size = hash_file(path)
        out.append({"source": source, "bytes": size, "sha256": sha, "status": "ok"})
    return out


def _finish(p, cfg: RunConfig, c: _Collector, recs, *, schema, tar: bool) -> None:
    from clipcurate.safety.schema import extend as with_safety

    out = cfg.sink.output
    schema = with_safety(schema, cfg.safety)  # safety columns only when a safety check is on
    parquet_dir = "parquet" if cfg.until is None else f"until_{cfg.until}"
    shards = recs | "WriteShards" >> WriteShards(out, cfg.sink.samples_per_shard, tar=tar,
                                                 parquet=cfg.sink.write_parquet or not tar,
                                                 schema=schema, parquet_dir=parquet_dir,
                                                 layout=cfg.sink.layout, score_model=cfg.scoring.model)
    rejects = (_flatten(p, c.rejects, "AllRejects")
               | "WriteRejects" >> WriteShards(out, cfg.sink.samples_per_shard * 10, tar=False,
                                               schema=with_safety(REJECT, cfg.safety, reject=True),
                                               parquet_dir="rejects"))
    # a few thumbnails per outcome (kept, each image-stage drop reason) for the report
    _ = (recs, _flatten(p, c.rejects, "ExampleRejects")) | "WriteExamples" >> WriteExamples(out)
    counts = _flatten(p, c.counts, "AllCounts") | "SumCounts" >> beam.CombinePerKey(sum)
    stats = _flatten(p, c.stats, "AllStats")
    files = _flatten(p, c.files, "AllFiles")
    spec = {"config": cfg.to_dict(), "config_hash": cfg.hash(), "seed": cfg.seed,
            "stage_order": c.order + ["write"], "until": cfg.until, "versions_": mf.versions()}
    write_counts = shards | "WriteCounts" >> beam.Map(lambda s: (("write", "in"), s["rows"]))
    (p | "ManifestSeed" >> beam.Create([None])
       | "WriteManifest" >> beam.Map(_write_manifest, out, spec,
                                     counts=beam.pvalue.AsList(counts),
                                     write_counts=beam.pvalue.AsList(write_counts),
                                     stats=beam.pvalue.AsList(stats),
                                     files=beam.pvalue.AsList(files),
                                     shards=beam.pvalue.AsList(shards),
                                     rejects=beam.pvalue.AsList(rejects)))


def _write_manifest(_, out, spec, counts, write_counts, stats, files, shards, rejects):
    rows = sum(n for _, n in write_counts)
    all_counts = list(counts) + [(("write", "in"), rows), (("write", "kept"), rows)]
    inputs = sorted(files, key=lambda f: f["source"])
    manifest = mf.build_manifest(counts=all_counts, stats=mf.relative_to_output(list(stats), out),
                                 shards=shards, rejects=rejects, inputs=inputs, **spec)
    return mf.write_manifest(out, manifest)


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Standard Beam options; the local default runner is the in-process FnApiRunner."""
    args = list(beam_args)
    if not any(a.startswith("--runner") for a in args):
        args.append("--runner=FnApiRunner")
    return PipelineOptions(args)


def run(cfg: RunConfig, beam_args: list[str] | None = None, *, report: bool | None = None) -> dict[str, Any]:
    """Run the pipeline to completion; return the manifest written to ``cfg.sink.output``.

    Raises ValueError with one line when the run cannot give anything meaningful: no
    input, a bad input with ``ingest.on_bad_file="fail"``, or no readable input file."""
    import json

    if not cfg.ingest.inputs:
        raise ValueError("no inputs: give --input (paths or globs) or ingest.inputs in the config")
    try:
        with (_quiet_bad_file_logs(), progress.live_run(cfg),  # progress: stderr only, never outputs
              beam.Pipeline(options=pipeline_options(beam_args or [])) as p):
            build(p, cfg)
    except Exception as e:  # noqa: BLE001 - a runner wraps a DoFn's error in its own
        message = _bad_file_line(e)
        if message is None:
            raise
        raise ValueError(message) from None
    manifest = json.loads(read_bytes(join(cfg.sink.output, "manifest.json")))
    _remove_stale_shards(cfg.sink.output, manifest)
    _check_readable(manifest, cfg.sink.output)
    if report if report is not None else cfg.sink.report:
        from clipcurate.sinks.report import write_report
        write_report(cfg.sink.output)
    return manifest


# where Beam's local runners log a DoFn's exception (in process; relayed from worker processes)
_BEAM_ERROR_LOGGERS = ("apache_beam.runners.common", "apache_beam.runners.worker.bundle_processor",
                       "apache_beam.runners.worker.sdk_worker", "apache_beam.runners.portability.local_job_service")


class _DropBadFileLogs(logging.Filter):
    """Drops the runner's log record (with traceback) of a BadInputFile: run() says it in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        from clipcurate.ingest.transform import BAD_FILE_MARK

        exc = record.exc_info[1] if record.exc_info else None
        return BAD_FILE_MARK not in record.getMessage() and BAD_FILE_MARK not in str(exc or "")


@contextlib.contextmanager
def _quiet_bad_file_logs():
    """While the pipeline runs in this process, keep a bad input file's traceback out of the log."""
    quiet = _DropBadFileLogs()
    where = list(logging.getLogger().handlers) + [logging.getLogger(name) for name in _BEAM_ERROR_LOGGERS]
    for w in where:
        w.addFilter(quiet)
    try:
        yield
    finally:
        for w in where:
            w.removeFilter(quiet)


def _bad_file_line(e: BaseException) -> str | None:
    """The BadInputFile message inside a (runner-wrapped) exception, on one line, or None."""
    from clipcurate.ingest.transform import BAD_FILE_MARK

    text = str(e)
    at = text.find(BAD_FILE_MARK)
    if at < 0:
        return None
    line = text[at:].split("\n", 1)[0]
    return line.split(" [while running", 1)[0].strip()


def _check_readable(manifest: dict[str, Any], output: str) -> None:
    """Raise ValueError when every input file was skipped (nothing could be read)."""
    inputs = manifest["inputs"]
    skipped = [i for i in inputs if i["status"] in ("bad_file", "unreadable_file")]
    if inputs and len(skipped) == len(inputs):
        named = "; ".join(f"{i['source']}: {i['status']}" for i in skipped[:5])
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        raise ValueError(f"no readable input: all {len(inputs)} input file(s) were skipped ({named}{more}); "
                         f"errors in {join(output, 'manifest.json')}")


def _remove_stale_shards(output: str, manifest: dict[str, Any]) -> None:
    """Delete shard files a previous run into the same output left and this run did not write."""
    from apache_beam.io.filesystems import FileSystems

    keep = {s[k] for s in manifest["shards"] + manifest["rejects"]
            for k in ("tar", "parquet", "shard_parquet", "stats", "metadata") if k in s}
    dirs = [("shards", "*.tar"), ("parquet", "*.parquet"), ("rejects", "*.parquet"),
            ("shards", "*.parquet"), ("shards", "*_stats.json"), ("metadata", "*.parquet")]  # sink.layout files
    if manifest.get("until"):
        dirs.append((f"until_{manifest['until']}", "*.parquet"))
    for sub, pattern in dirs:
        for m in FileSystems.match([join(output, sub, pattern)])[0].metadata_list:
            if f"{sub}/{m.path.replace(chr(92), '/').rsplit('/', 1)[-1]}" not in keep:
                FileSystems.delete([m.path])
