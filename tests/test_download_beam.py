"""The Download PTransform on the hostile web: counts, statuses, determinism, resume."""
import hashlib
import json
import signal
import subprocess
import sys
import time

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.options.pipeline_options import PipelineOptions

from clipcurate.download import Download, DownloadRunner
from clipcurate.schemas.records import DOWNLOADED, REJECT, to_table
from clipcurate.schemas.status import is_known
from clipcurate.schemas.uid import make_uid

BAD = ["/hang", "/status/404", "/status/500", "/loop/a", "/redirect?to=http://10.0.0.1/", "/truncated.jpg",
       "/random.jpg", "/html.jpg", "/bomb.png", "/gzip-bomb", "/huge-length", "/noai/IMG", "/private/IMG",
       "/gen/tiny.png", "/gen/wide.png"]


def records(web, n_good=24, tag=""):
    imgs = web.image_names()
    urls = [web.url(f"/img/{imgs[i % len(imgs)]}?r={tag}{i}", ("good.test", "img.test", "cdn.test")[i % 3])
            for i in range(n_good)]
    urls += [web.url(p.replace("IMG", imgs[0]) + ("&" if "?" in p else "?") + f"r={tag}") for p in BAD]
    urls += ["ftp://example.org/a.jpg", "not a url", "http://" + "x" * 3000 + ".com/"]
    return [{"uid": make_uid(u, f"caption {i}"), "url": u, "caption": f"caption {i}"} for i, u in enumerate(urls)]


_SINK = {}  # the in-process runner shares this module's globals


def _keep(values, key):
    _SINK[key] = values


def run_beam(recs, cfg):
    _SINK.clear()
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        out = p | beam.Create(recs) | Download(cfg, keep_rejects=True)
        for k in ("kept", "counts", "rejects", "stats"):
            out[k] | f"Collect{k}" >> beam.combiners.ToList() | f"Keep{k}" >> beam.Map(_keep, k)
    return dict(_SINK)


def test_download_transform_counts_every_record(hostile_web, loopback_download_config):
    recs = records(hostile_web, tag="a")
    cfg = loopback_download_config(timeout=1.0, min_image_size=200, max_aspect_ratio=3, batch_size=16)
    got = run_beam(recs, cfg)
    counts = {}
    for (stage, key), n in got["counts"]:
        assert stage == "download"
        counts[key] = counts.get(key, 0) + n
    dropped = sum(n for k, n in counts.items() if k.startswith("dropped:"))
    assert counts["in"] == len(recs) == counts["kept"] + dropped
    assert counts["kept"] == 24 == len(got["kept"])
    assert len(got["rejects"]) == dropped  # every failed row is kept, with its reason
    assert {r["uid"] for r in got["kept"]} | {r["uid"] for r in got["rejects"]} == {r["uid"] for r in recs}
    for r in got["kept"]:
        assert r["status"] == "ok" and r["http_status"] == 200 and r["image_format"] == "jpg"
        assert hashlib.sha256(r["image"]).hexdigest() == r["sha256"] and min(r["width"], r["height"]) == 256
    for r in got["rejects"]:
        assert r["image"] is None if "image" in r else True
        assert is_known(r["status"]) and r["reason"] == r["status"] and r["stage"] == "download" and r["error"]
    reasons = {k.split(":", 1)[1] for k in counts if k.startswith("dropped:")}
    assert reasons >= {"timeout", "http_404", "http_500", "redirect_loop", "private_address", "decode_error",
                       "not_image", "bomb", "too_large", "noai", "robots", "too_small", "bad_aspect", "bad_scheme",
                       "bad_url"}
    (name, stats), = got["stats"]
    assert name == "download" and stats["requests"] >= 24 and stats["max_request_seconds"] <= cfg.timeout + 0.2
    to_table(got["kept"], DOWNLOADED)
    to_table(got["rejects"], REJECT)  # the failed rows fit the Parquet schema


def _table(results):
    rows = sorted((r for _, r in results), key=lambda r: r["uid"])
    return to_table(rows, DOWNLOADED)


def test_output_independent_of_concurrency(hostile_web, loopback_download_config):
    recs = records(hostile_web, n_good=12, tag="b")
    with DownloadRunner(loopback_download_config(timeout=1.0, concurrency=1, per_host_concurrency=1)) as r1:
        a = r1.run(recs)
    with DownloadRunner(loopback_download_config(timeout=1.0, concurrency=64, batch_size=4)) as r2:
        b = r2.run(list(reversed(recs)))
    assert _table(a).equals(_table(b))


RESUME_SCRIPT = """
import json, sys
from clipcurate.download import DownloadRunner
from clipcurate.download.config import DownloadConfig
cfg = DownloadConfig(**json.loads(sys.argv[1]))
recs = json.loads(sys.stdin.read())
with DownloadRunner(cfg) as r:
    r.run(recs)
"""


def test_resume_after_kill_does_not_refetch_and_is_byte_identical(hostile_web, loopback_download_config, tmp_path):
    recs = records(hostile_web, n_good=30, tag="c")
    for i, r in enumerate(recs[:30]):  # slow enough to kill mid-run
        r["url"] += "&latency_ms=150"
    kw = dict(timeout=1.0, concurrency=4, per_host_concurrency=2, batch_size=4)
    cfg = loopback_download_config(cache_dir=str(tmp_path / "cache"), **kw)
    proc = subprocess.Popen([sys.executable, "-c", RESUME_SCRIPT, json.dumps(cfg.__dict__)], stdin=subprocess.PIPE)
    proc.stdin.write(json.dumps(recs).encode())
    proc.stdin.close()
    cache = tmp_path / "cache"
    deadline = time.monotonic() + 20
    while len(list(cache.glob("*/*.fetch"))) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cached = {p.stem for p in cache.glob("*/*.fetch")}
    assert 8 <= len(cached) < len(recs)
    hits_before = dict(hostile_web.hits)
    with DownloadRunner(cfg) as r:
        resumed = r.run(recs)
        assert r.counts["from_cache"] == len(cached) and r.counts["fetched"] == len(recs) - len(cached)
    for rec in recs:
        if rec["uid"] in cached and "/img/" in rec["url"]:
            target = rec["url"].split(str(hostile_web.port), 1)[1]
            assert hostile_web.hits[target] == hits_before.get(target, 0), target  # not fetched again
    with DownloadRunner(loopback_download_config(cache_dir=str(tmp_path / "fresh"), **kw)) as r:
        uninterrupted = r.run(recs)
    pq.write_table(_table(resumed), tmp_path / "resumed.parquet")
    pq.write_table(_table(uninterrupted), tmp_path / "full.parquet")
    assert (tmp_path / "resumed.parquet").read_bytes() == (tmp_path / "full.parquet").read_bytes()
