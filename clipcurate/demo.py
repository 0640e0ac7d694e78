"""The offline end-to-end demo: a loopback web server serving bundled CC BY photos, a small
candidate file pointing at it, and every stage of the pipeline.

It writes ``<output>/input/candidates.parquet`` (URLs at the live port), runs the pipeline
with loopback allowed and a seeded randomly initialised tiny CLIP scorer, and prints the
funnel.  Nothing leaves 127.0.0.1.
"""
from __future__ import annotations

import csv
import functools
import http.server
import os
import threading
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from clipcurate.config import RunConfig


def demo_dir() -> Path:
    return Path(str(resources.files("clipcurate") / "data" / "demo"))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the demo output readable
        pass


# The demo's URLs (and so its uids, balancing draws and shard bytes) include the port: a fixed
# port makes two demo runs byte-identical.  If it is taken, a free port is used instead.
DEMO_PORT = 48213


@contextmanager
def serve_directory(directory: str | os.PathLike, port: int = 0):
    """Serve ``directory`` on 127.0.0.1 in a background thread; yield the base URL.

    ``port=0`` picks a free port; a busy fixed port falls back to a free one with a warning."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:
        print(f"note: port {port} is busy, serving on a free port (uids will differ from other runs)")
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def write_candidates(base_url: str, path: Path) -> Path:
    with open(demo_dir() / "candidates.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    table = pa.table({"url": [f"{base_url}/{r['path']}" for r in rows], "caption": [r["caption"] for r in rows]})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def demo_config(output: str, candidates: str) -> RunConfig:
    cfg = RunConfig()
    cfg.seed = 0
    cfg.ingest.inputs = [candidates]
    cfg.balance.metadata = str(demo_dir() / "metadata.json")
    cfg.balance.t = 1
    cfg.download.allow_loopback = True
    cfg.download.respect_robots = False
    cfg.download.timeout = 10.0
    cfg.download.image_size = 224
    cfg.dedupe.caption_near = True
    cfg.dedupe.image_near = True
    cfg.scoring.model = "clipcurate-tiny"
    cfg.scoring.random_init = True
    cfg.scoring.top_fraction = 0.9
    cfg.sink.output = output
    cfg.sink.samples_per_shard = 4
    cfg.sink.keep_rejects = True
    return cfg


def run_demo(output: str = "demo_out", beam_args: list[str] | None = None) -> dict:
    from clipcurate.pipelines.curate import run

    out = Path(output).resolve()
    with serve_directory(demo_dir(), DEMO_PORT) as base:
        candidates = write_candidates(base, out / "input" / "candidates.parquet")
        cfg = demo_config(str(out), str(candidates))
        manifest = run(cfg, beam_args or [])
    print(format_funnel(manifest))
    print(f"\nshards:   {out / 'shards'}  ({len(manifest['shards'])} tar files, "
          f"{manifest['total_samples']} samples)")
    print(f"manifest: {out / 'manifest.json'}")
    if (out / "report.html").exists():
        print(f"report:   {out / 'report.html'}")
    return manifest


def format_funnel(manifest: dict) -> str:
    """The end-of-run summary: per stage in / kept / dropped, then every input file that
    was skipped or read only in part, with its status and error."""
    lines = [f"{'stage':<18}{'in':>7}{'kept':>7}  dropped"]
    for stage, c in manifest["stages"].items():
        dropped = ", ".join(f"{k}={v}" for k, v in c["dropped"].items()) or "-"
        lines.append(f"{stage:<18}{c['in']:>7}{c['kept']:>7}  {dropped}")
    inputs = manifest.get("inputs") or []
    for status, title in (("skipped", "skipped input files"), ("truncated_file", "input files read in part")):
        bad = [i for i in inputs if (i.get("status") in ("bad_file", "unreadable_file") if status == "skipped"
                                     else i.get("status") == status)]
        if bad:
            lines.append(f"\n{title} ({len(bad)} of {len(inputs)}):")
            lines += [f"  {i['source']}  {i['status']}: {i.get('error', '')}" for i in bad]
    return "\n".join(lines)
