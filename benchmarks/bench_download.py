"""Download stage benchmark on the hostile loopback web (no traffic leaves 127.0.0.1).

Part 1 -- safety: N hostile URLs (hang, drip, 404/500/429, loops, private redirects, bombs,
huge/endless bodies, robots, noai, bad URLs ...) mixed with good ones, through the Beam
``Download`` stage: requests past their deadline, wall time, crashes, statuses, peak RSS,
connection attempts outside loopback (the network guard is installed in this process).

Part 2 -- throughput: the same real photos (../shared/data/open-images-cc-test-images)
behind 50 ms injected latency per request; our ``Download`` stage vs img2dataset's own
``download()`` run as a library on the same URL list, same resize settings
(keep_ratio, 256, jpg q95).  Prints img/s and the ratios, two ways:

* wall: successes / wall time of the library call (Beam pipeline; img2dataset ``download()``),
  start-up included (process spawn, imports, pipeline construction);
* steady: successes / (last sample done - first sample started), each tool by its own
  clock: ours from the stage stats (``min_first_submit_unix``, ``max_last_done_unix``),
  img2dataset from its shard stats (earliest ``start_time`` to latest ``end_time``);
* marginal (with two ``--n`` sizes): (n2 - n1) / (wall(n2) - wall(n1)), the rate at which
  extra images go through once started, with start-up cancelled out and no tool's own
  clock needed; and the CPU seconds per extra image.

CPU and memory are those of the **whole process tree** (``_measure``: a cgroup where
available, else /proc sampling): this process, Beam's workers, our image worker processes
(children of multiprocessing's forkserver, never reaped by us), img2dataset's pool.  The
loopback server is left out (``_measure.exclude``): it stands for remote hosts.
img2dataset runs at the counts its README recommends (defaults 1 process x 256 threads "for
small sized datasets"; for larger ones "processes_count as the number of cores", thread_count
raised while bandwidth and CPU allow: 2 x 256 here) and any others given with ``--img2dataset``.
Rounds are interleaved (ours then img2dataset, reversed every other round); a table gives
median (min-max) over the rounds per configuration and size.

Part 1b -- a real crawl's traps (issue #12), everything resolved through the hostile web's
DNS server by c-ares, per-host limits on (``--crawl-per-host`` 2 in flight, ``--crawl-rate``
2/s): 12 hosts whose DNS answer takes 8 s (2 URLs each) next to 20 URLs on 5 healthy hosts,
100 URLs on 10 hosts serving a 490 KB robots.txt, 40 URLs spelling one host 5 ways
(userinfo, trailing dot, upper case), gzip members followed by endless / 100 trailing bytes.
Figures counted at the server (per canonical host: most in flight, most arrivals in any 1 s
window, robots.txt fetches) and in the stage's stats (requests past the deadline, DNS time
included), statuses against the expected ones, peak RSS.

The server runs in a child process at ``--server-nice`` (default 10): it stands for remote
hosts, so when the cores are saturated it should not take the client's CPU.  The load
average before each run is printed (other jobs may share the machine).

    python benchmarks/bench_download.py [--hostile 1200 --good 800 --n 2000 8000 --latency-ms 50]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import Measurement, exclude, machine, measure, table  # noqa: E402

from clipcurate.download import Download  # noqa: E402
from clipcurate.download.config import DownloadConfig
from clipcurate.schemas.uid import make_uid
from clipcurate.testing import HostileWeb, start_subprocess
from clipcurate.testing.hostile_web import stop_subprocess
from clipcurate.testing.collect import SINK, keep
from clipcurate.testing.netguard import GUARD

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "data" / "open-images-cc-test-images"
HOSTILE = ["/hang", "/drip", "/status/404", "/status/500", "/status/429?retry_after=1", "/status/503",
           "/loop/a", "/chain/9", "/redirect?to=http://10.0.0.1/x", "/redirect?to=http://[fd00::1]/x",
           "/redirect?to=http://169.254.169.254/", "/truncated.jpg", "/random.jpg", "/html.jpg", "/bomb.png",
           "/gzip-bomb", "/huge-length", "/endless", "/noai/IMG", "/private/IMG", "/gen/tiny.png",
           "/gen/wide.png"]
BAD_INPUT = ["file:///etc/passwd", "ftp://example.org/a.jpg", "data:image/png;base64,AAAA", "not a url",
             "http://" + "x" * 5000 + ".com/a.jpg", "http://[::1/x"]
HOSTS = ("good.test", "img.test", "cdn.test", "slow.test")

def run_stage(records, cfg):
    """Run Download on FnApiRunner in process; returns (kept, rejects, counts, stats)."""
    SINK.clear()
    with beam.Pipeline(options=PipelineOptions(["--runner=FnApiRunner"])) as p:
        out = p | beam.Create(records, reshuffle=False) | Download(cfg, keep_rejects=True)
        for k in ("kept", "rejects", "counts", "stats"):
            out[k] | f"Collect{k}" >> beam.combiners.ToList() | f"Keep{k}" >> beam.Map(keep, k)
    return SINK["kept"], SINK["rejects"], SINK["counts"], dict(SINK["stats"]).get("download", {})


def run_stage_counts(records, cfg, workers: int, tmp: Path) -> tuple[dict, dict]:
    """Run Download with ``workers`` processes (FnApiRunner multi_processing when > 1);
    returns the summed counts and the stage's stats (read back from text files, workers
    are other processes)."""
    opts = ["--runner=FnApiRunner"] + ([f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
                                       if workers > 1 else [])
    prefix = tmp / f"counts-{workers}-{time.monotonic_ns()}"
    with beam.Pipeline(options=PipelineOptions(opts)) as p:
        out = p | beam.Create(records) | Download(cfg, keep_rejects=False)
        counts = out["counts"] | beam.CombinePerKey(sum) | beam.Map(lambda kv: json.dumps(["count", kv[0][1], kv[1]]))
        stats = out["stats"] | beam.Map(lambda kv: json.dumps(["stats", kv[0], kv[1]]))
        (counts, stats) | beam.Flatten() | beam.io.WriteToText(str(prefix))
    counts, stats = {}, {}
    for f in tmp.glob(prefix.name + "*"):
        for line in f.read_text().splitlines():
            kind, k, v = json.loads(line)
            if kind == "count":
                counts[k] = counts.get(k, 0) + v
            else:
                stats = v
    return counts, stats


def stop_server(proc) -> None:
    """Close the server's stdin (it exits); kill it if it is not gone in 30 s (starved by load)."""
    proc.stdin.close()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rec(url, i):
    return {"uid": make_uid(url, f"c{i}"), "url": url, "caption": f"c{i}"}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def hostile_part(args) -> dict:
    proc, port = start_subprocess([IMAGES], nice=args.server_nice)
    exclude(proc.pid)
    try:
        names = sorted(p.name for p in IMAGES.glob("*.jpg"))
        urls = []
        for i in range(args.hostile):
            path = HOSTILE[i % len(HOSTILE)].replace("IMG", names[i % len(names)])
            urls.append(f"http://{HOSTS[i % 4]}:{port}{path}{'&' if '?' in path else '?'}h={i}")
        urls += [BAD_INPUT[i % len(BAD_INPUT)] + ("" if i < len(BAD_INPUT) else f"#{i}") for i in range(60)]
        urls += [f"http://{HOSTS[i % 4]}:{port}/img/{names[i % len(names)]}?g={i}" for i in range(args.good)]
        records = [rec(u, i) for i, u in enumerate(urls)]
        cfg = DownloadConfig(allow_loopback=True, host_overrides=HostileWeb.host_overrides(), timeout=2.0,
                             retries=1, max_retry_after=2, max_bytes=10_000_000, concurrency=256,
                             per_host_concurrency=64, batch_size=512, min_image_size=200, max_aspect_ratio=3,
                             image_processes=args.image_processes[0], image_nice=args.image_nice)
        load0, t = load(), time.monotonic()
        crashed = None
        with measure("hostile") as tree:
            try:
                kept, rejects, counts, stats = run_stage(records, cfg)
            except Exception as e:  # noqa: BLE001 - a crash is a result here
                crashed, kept, rejects, counts, stats = repr(e), [], [], [], {}
        wall = time.monotonic() - t
    finally:
        stop_server(proc)
    statuses = collections.Counter(r["status"] for r in kept + rejects)
    with_status = sum(1 for r in kept + rejects if r.get("status"))
    tally = collections.Counter()
    for (_, key), n in counts:  # (("download", key), n) from every bundle
        tally[key] += n
    dropped = sum(n for k, n in tally.items() if k.startswith("dropped:"))
    return {"urls": len(records), "hostile": args.hostile + 60, "good": args.good, "wall_s": round(wall, 2),
            "deadline_s": cfg.timeout, "attempts": cfg.retries + 1, "crash": crashed,
            "requests": stats.get("requests"), "over_deadline": stats.get("over_deadline", 0),
            "max_request_s": stats.get("max_request_seconds"), "retries": stats.get("retries"),
            "max_loop_lag_s": stats.get("max_loop_lag_seconds"), "load_before": load0,
            "image_processes": cfg.image_processes,
            "with_status_pct": round(100 * with_status / len(records), 2), "kept": len(kept),
            "statuses": dict(statuses.most_common()),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            **tree_fields(tree.result),
            "non_loopback_attempts": len(GUARD.violations),
            "counts_balance": bool(counts) and tally["in"] == len(records) == tally["kept"] + dropped}


def crawl_part(args) -> dict:
    """Part 1b (module doc): stalling DNS, URL spellings, huge robots.txt, gzip trailing bytes."""
    names = sorted(p.name for p in IMAGES.glob("*.jpg"))
    proc, port = start_subprocess([IMAGES], nice=args.server_nice, dns=True)
    exclude(proc.pid)
    cases = []  # (url, expected status, group)
    for k in range(12):
        cases += [(f"http://dnsstall-8000.s{k}.test:{port}/img/{names[i % len(names)]}?i={i}", "dns_timeout", "dns_stalled")
                  for i in range(2)]
    cases += [(f"http://h{i % 5}.test:{port}/img/{names[i % len(names)]}?i={i}", "ok", "dns_healthy") for i in range(20)]
    cases += [(f"http://bigrobots-{i % 10}.test:{port}/img/{names[i % len(names)]}?i={i}", "ok", "big_robots")
              for i in range(100)]
    spellings = ["http://u{i}@spell.test:{p}", "http://SPELL.TEST:{p}", "http://spell.test.:{p}",
                 "http://u{i}:pw@Spell.Test.:{p}", "http://spell.test:{p}"]
    cases += [(spellings[i % 5].format(i=i, p=port) + f"/img/{names[i % len(names)]}?i={i}", "ok", "spellings")
              for i in range(40)]
    cases += [(f"http://gz.test:{port}/gzip-trailing/{names[i % len(names)]}?i={i}" + ("&trailing=100" if i % 2 else ""),
               "ok" if i % 2 else "too_large", "gzip_trailing") for i in range(20)]
    records = [rec(u, i) for i, (u, _, _) in enumerate(cases)]
    cfg = DownloadConfig(allow_loopback=True, dns_servers=[f"127.0.0.1:{proc.dns_port}"], timeout=2.0, retries=1,
                         dns_timeout=10.0, max_bytes=10_000_000, concurrency=256, batch_size=512,
                         per_host_concurrency=args.crawl_per_host, per_host_rate=args.crawl_rate, per_host_burst=2,
                         image_processes=args.image_processes[0], image_nice=args.image_nice)
    load0, t = load(), time.monotonic()
    try:
        with measure("crawl") as tree:
            kept, rejects, counts, stats = run_stage(records, cfg)
    finally:
        wall = time.monotonic() - t
        hosts = stop_subprocess(proc)
    by_uid = {r["uid"]: r for r in kept + rejects}
    groups: dict = {}
    for (url, want, group), r in zip(cases, records):
        g = groups.setdefault(group, {"urls": 0, "as_expected": 0, "statuses": collections.Counter()})
        got = by_uid.get(r["uid"], {}).get("status")
        g["urls"] += 1
        g["as_expected"] += got == want
        g["statuses"][got] += 1
    for g in groups.values():
        g["statuses"] = dict(g["statuses"])
    bound = cfg.per_host_burst + cfg.per_host_rate * 1.0 if cfg.per_host_rate > 0 else None  # token bucket, any 1 s
    return {"urls": len(records), "wall_s": round(wall, 2), "load_before": load0, "deadline_s": cfg.timeout,
            "per_host_concurrency": cfg.per_host_concurrency, "per_host_rate": cfg.per_host_rate,
            "per_host_burst": cfg.per_host_burst, "requests": stats.get("requests"),
            "over_deadline_incl_dns": stats.get("over_deadline", 0), "max_request_s": stats.get("max_request_seconds"),
            "max_loop_lag_s": stats.get("max_loop_lag_seconds"), "dns_timeouts": stats.get("dns_timeouts", 0),
            "dns_lookups": stats.get("dns_lookups"), "robots_fetches": stats.get("robots_fetches"),
            "with_status_pct": round(100 * sum(1 for r in by_uid.values() if r.get("status")) / len(records), 2),
            "groups": groups,
            "server_max_in_flight_per_host": max(h["max_in_flight"] for h in hosts.values()) if hosts else None,
            "server_max_per_1s_per_host": max(h["max_in_window"] for h in hosts.values()) if hosts else None,
            "server_rate_bound_per_1s": bound,
            "server_spell_test": hosts.get("spell.test"),
            "server_robots_fetches_max_per_host": max(h["robots_fetches"] for h in hosts.values()) if hosts else None,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            **tree_fields(tree.result), "non_loopback_attempts": len(GUARD.violations)}


def throughput_part(args) -> dict:
    proc, port = start_subprocess([IMAGES], latency_ms=args.latency_ms, nice=args.server_nice)
    exclude(proc.pid)
    tmp = Path(tempfile.mkdtemp(prefix="bench-dl-"))
    sizes = sorted(set(args.n))
    try:
        import img2dataset  # noqa: F401
    except ImportError:
        print("img2dataset baselines skipped: img2dataset is not installed (pip install img2dataset, "
              "or the project's `test` extra)", flush=True)
        args.img2dataset = []
    try:
        names = sorted(p.name for p in IMAGES.glob("*.jpg"))
        ours, base = [], []
        for r in range(args.repeat):  # interleaved, so a change of machine load hits both
            for n in sizes:
                urls = [f"http://127.0.0.1:{port}/img/{names[i % len(names)]}?i={i}&n={n}" for i in range(n)]
                (tmp / "urls.txt").write_text("\n".join(urls) + "\n")
                jobs = [("ours", (w, ip)) for w in args.workers for ip in args.image_processes]
                jobs += [("img2dataset", pt) for pt in args.img2dataset]
                for tool, conf in (jobs if r % 2 == 0 else jobs[::-1]):
                    if tool == "ours":
                        ours.append(run_ours(urls, *conf, args.concurrency, tmp, args.image_nice))
                    else:
                        base.append(run_img2dataset(tmp, *conf, n))
                    print(tool, (ours if tool == "ours" else base)[-1], flush=True)
    finally:
        stop_server(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    best = lambda rows, key: max(rows, key=lambda r: r[key])[key]  # noqa: E731
    report = {"n": sizes, "latency_ms": args.latency_ms, "cores": os.cpu_count(), "server_nice": args.server_nice,
              "ours": ours, "img2dataset": base}
    for n in sizes if base else []:
        o = [r for r in ours if r["n"] == n]
        b = [r for r in base if r["n"] == n]
        report[f"ratio_wall_best_vs_best_n{n}"] = round(best(o, "img_per_s") / best(b, "img_per_s"), 2)
        report[f"ratio_steady_best_vs_best_n{n}"] = round(best(o, "steady_img_per_s") / best(b, "steady_img_per_s"), 2)
    if len(sizes) > 1:  # marginal: what the extra images cost, start-up cancelled out
        report["marginal"] = marginal(ours, base, sizes[0], sizes[-1])
    summary = {}
    for r in ours + base:  # one row per configuration and size: median (min-max) over the rounds
        label = (f"ours, {r['workers']} Beam worker(s), image_processes={r['image_processes']}" if "workers" in r
                 else f"img2dataset, {r['processes']} process(es) x {r['threads']} threads") + f", n={r['n']}"
        summary.setdefault(label, []).append(Measurement(
            label, r["wall_s"], r["cpu_s"], peak_rss=int(r["peak_rss_mib"] * 2**20),
            peak_pss=int(r["peak_pss_mib"] * 2**20) if r.get("peak_pss_mib") else None,
            load_before=r["load_before"], load_after=r["load_after"]))
    print(machine())
    table(summary, items={k: int(k.rsplit("n=", 1)[1]) for k in summary}, unit="img")
    return report


def _key(r: dict) -> tuple:
    return ("ours", r["workers"], r["image_processes"]) if "workers" in r else ("img2dataset", r["processes"], r["threads"])


def marginal(ours: list, base: list, n1: int, n2: int) -> dict:
    """Per configuration: (n2 - n1) / (wall(n2) - wall(n1)) images/s and the CPU per extra
    image (whole process tree), from the medians over repeats; start-up cancels."""
    out = {}
    for rows in (ours, base):
        for key in sorted({_key(r) for r in rows}):
            med = {n: {k: statistics.median(r[k] for r in rows if _key(r) == key and r["n"] == n)
                       for k in ("wall_s", "cpu_s")} for n in (n1, n2)}
            dw, dc = med[n2]["wall_s"] - med[n1]["wall_s"], med[n2]["cpu_s"] - med[n1]["cpu_s"]
            out["/".join(map(str, key))] = {"img_per_s": round((n2 - n1) / dw, 1) if dw > 0 else None,
                                            "cpu_ms_per_img": round(1000 * dc / (n2 - n1), 2)}
    best = lambda tool: max(v["img_per_s"] or 0 for k, v in out.items() if k.startswith(tool))  # noqa: E731
    if base and best("img2dataset"):
        out["ratio_best_vs_best"] = round(best("ours") / best("img2dataset"), 2)
    return out


def tree_fields(m: Measurement) -> dict:
    """The whole-process-tree figures of one run (CPU, peak RSS/PSS, load after)."""
    return {"cpu_s": round(m.cpu_s, 2), "peak_rss_mib": round(m.peak_rss / 2**20, 1),
            "peak_pss_mib": round(m.peak_pss / 2**20, 1) if m.peak_pss else None,
            "load_after": round(m.load_after, 2), "cpu_method": m.method}


def run_ours(urls, workers: int, image_processes: int, conc: int, tmp: Path,
             image_nice: int = DownloadConfig.image_nice) -> dict:
    cfg = DownloadConfig(allow_loopback=True, timeout=10, retries=0, concurrency=conc,
                         per_host_concurrency=conc, batch_size=max(256, 2 * conc), image_size=256,
                         resize_mode="keep_ratio", encode_format="jpg", encode_quality=95,
                         image_processes=image_processes, image_nice=image_nice)
    records = [rec(u, i) for i, u in enumerate(urls)]
    load0 = load()
    with measure("ours") as tree:
        counts, stats = run_stage_counts(records, cfg, workers, tmp)
    wall = tree.result.wall_s
    ok = counts.get("kept", 0)
    span = stats["max_last_done_unix"] - stats["min_first_submit_unix"]
    return {"n": len(urls), "workers": workers, "image_processes": image_processes, "concurrency": conc, "ok": ok,
            "wall_s": round(wall, 2), "img_per_s": round(ok / wall, 1), "steady_s": round(span, 2),
            "steady_img_per_s": round(ok / span, 1), "load_before": load0, **tree_fields(tree.result),
            "cpu_ms_per_img": round(1e3 * tree.result.cpu_s / len(urls), 2)}


def run_img2dataset(tmp: Path, procs: int, threads: int, n: int) -> dict:
    from img2dataset import download

    out = tmp / f"i2d-{procs}-{threads}-{time.monotonic_ns()}"
    load0 = load()
    with measure("img2dataset") as tree:
        download(url_list=str(tmp / "urls.txt"), input_format="txt", output_folder=str(out), output_format="files",
                 image_size=256, resize_mode="keep_ratio", encode_format="jpg", encode_quality=95,
                 processes_count=procs, thread_count=threads, number_sample_per_shard=max(1, n // (2 * procs)),
                 timeout=10, retries=0, enable_wandb=False, compute_hash="sha256", distributor="multiprocessing")
    wall = tree.result.wall_s
    shards = [json.loads(p.read_text()) for p in out.glob("*_stats.json")]
    ok = sum(s["successes"] for s in shards)
    span = max(s["end_time"] for s in shards) - min(s["start_time"] for s in shards)
    return {"n": n, "processes": procs, "threads": threads, "ok": ok, "wall_s": round(wall, 2),
            "img_per_s": round(ok / wall, 1), "steady_s": round(span, 2), "steady_img_per_s": round(ok / span, 1),
            "load_before": load0, **tree_fields(tree.result), "cpu_ms_per_img": round(1e3 * tree.result.cpu_s / n, 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hostile", type=int, default=1200)
    ap.add_argument("--good", type=int, default=800)
    ap.add_argument("--n", type=int, nargs="+", default=[2000, 8000],
                    help="URL list sizes for the throughput part; with two or more, the marginal rate between "
                         "the smallest and largest (start-up cancelled out) is reported too")
    ap.add_argument("--latency-ms", type=float, default=50)
    ap.add_argument("--concurrency", type=int, default=128, help="requests in flight per worker")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Beam worker processes")
    ap.add_argument("--image-processes", type=int, nargs="+", default=[-1, 0],
                    help="DownloadConfig.image_processes values to run (-1: one per core, 0: threads); "
                         "the hostile part uses the first")
    ap.add_argument("--image-nice", type=int, default=DownloadConfig.image_nice,
                    help="DownloadConfig.image_nice (niceness added to the image worker processes)")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved repetitions of the throughput runs")
    ap.add_argument("--server-nice", type=int, default=10, help="niceness of the loopback server process")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--img2dataset", type=lambda s: tuple(map(int, s.split("x"))), nargs="+",
                    default=[(1, 256), (2, 256), (2, 32)],
                    help="processes x threads: img2dataset's defaults (1x256), its README's advice for larger "
                         "lists (processes = cores, 2x256 here) and 2x32")
    ap.add_argument("--skip-hostile", action="store_true")
    ap.add_argument("--skip-crawl", action="store_true")
    ap.add_argument("--crawl-per-host", type=int, default=2, help="per_host_concurrency of the crawl part")
    ap.add_argument("--crawl-rate", type=float, default=2.0, help="per_host_rate of the crawl part")
    args = ap.parse_args()
    print(machine(), flush=True)  # moves this process into its cgroup before any worker starts
    GUARD.install()
    report = {}
    if not args.skip_hostile:
        report["hostile"] = hostile_part(args)
        print(json.dumps(report["hostile"], indent=1), flush=True)
    if not args.skip_crawl:
        report["crawl"] = crawl_part(args)
        print(json.dumps(report["crawl"], indent=1), flush=True)
    if not args.skip_throughput:
        report["throughput"] = throughput_part(args)
        print(json.dumps(report["throughput"], indent=1), flush=True)


if __name__ == "__main__":
    sys.exit(main())
