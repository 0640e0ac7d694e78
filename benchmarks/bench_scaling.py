"""Cost and scaling of the text stages: CPU, peak RSS and shuffle bytes per candidate at several sizes.

Inputs: Parquet files of 50,000 rows (columns URL, TEXT) under ``--work`` (default
/tmp/clipcurate-scale), built from the 10,000 real LAION alt texts of
``../shared/data/img2dataset-tests/test_10000.parquet``: row i takes caption i mod 10,000 and
URL i mod 10,000 with a path prefix ``/x<i hex>`` (all URLs distinct); from the second cycle on a
caption gets one real word of another caption appended (light variation: near-duplicates, not
copies).  Size N reads the first N rows (whole files; N a multiple of 50,000 when > 50,000).

What runs: the project's pipeline (``clipcurate.pipelines.curate.build`` with a ``RunConfig``) on the
in-process FnApiRunner (one worker), once per ``--until`` stage (ingest, filter, dedupe_url,
[near_dup_caption], balance) and size, each in a fresh child process (so peak RSS is that run's).
Metadata for match + balance: the 500,000-entry list of bench_metaclip (WordNet + n-grams + pairs).

Per run the child reports: CPU seconds of its process (user + system, ``getrusage``), wall time,
peak RSS, the stage counts, and the bytes that cross each shuffle, from the runner's own
monitoring infos: for every GroupByKey (CoGroupByKey and Reshuffle expand to one) the input
PCollection's element count x mean sampled encoded size (Beam samples sizes with the
PCollection's coder); for every side input the same for the PCollection read as side input
(materialised once here; broadcast to every worker on Dataflow).  Lifted combiner partials
(per-bundle accumulators) are runner-made PCollections the graph does not name; their total is
reported as ``combiner_partials``.

Per stage, CPU = difference between successive ``--until`` runs (the stage, plus the change in the
sink's work: each run writes that stage's survivors as Parquet); "cumulative" = the whole run.
Flatness: marginal CPU per candidate (between the first two sizes vs the last two; fixed
costs cancel) and shuffle bytes per candidate (smallest vs largest size) must agree within
``--tolerance`` (20 %).  ``--repeat R`` keeps the least-CPU of R runs (the machine is shared).

Usage: python benchmarks/bench_scaling.py [--sizes 50000,150000,500000] [--repeat 1] [--near-dup] [--json out.json]
       python benchmarks/bench_scaling.py --from-json out.json   (summary and cost table of saved runs)
       python benchmarks/bench_scaling.py --child --n 1000000 --until balance   (one run, JSON line)
       python benchmarks/bench_scaling.py --child --n 5000000 --trace-rss --max-rss-gib 15 2> trace.log
       python benchmarks/bench_scaling.py --trace-summary trace.log   (peak RSS per runner stage)
       python benchmarks/bench_scaling.py --hot-paths   (issue #18's per-candidate paths vs the old code)
Results and the cost table: docs/benchmarks.md, "Scaling and cost".
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS_PER_FILE = 50_000
STAGES = ["ingest", "filter", "dedupe_url", "near_dup_caption", "balance"]
HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("CLIPCURATE_SHARED", HERE.parents[0].parent / "shared"))
DATA = SHARED / "data" / "img2dataset-tests" / "test_10000.parquet"
GBK_URN = "beam:transform:group_by_key:v1"
PARDO_URN = "beam:transform:pardo:v1"
COMBINE_URN = "beam:transform:combine_per_key:v1"


# -- inputs -----------------------------------------------------------------------------------

def _real_rows() -> tuple[list[str], list[str]]:
    import pyarrow.parquet as pq
    t = pq.read_table(DATA, columns=["URL", "TEXT"])
    return t.column("URL").to_pylist(), t.column("TEXT").to_pylist()


def _part(j: int, urls: list[str], captions: list[str]):
    """Rows j*ROWS_PER_FILE .. (j+1)*ROWS_PER_FILE - 1 as an Arrow table."""
    import pyarrow as pa
    n = len(captions)
    out_u, out_c = [], []
    for i in range(j * ROWS_PER_FILE, (j + 1) * ROWS_PER_FILE):
        u, c, cycle = urls[i % n], captions[i % n], i // n
        scheme, _, rest = u.partition("://")
        host, slash, path = rest.partition("/")
        out_u.append(f"{scheme}://{host}/x{i:x}{slash}{path}")
        if cycle:
            words = captions[(i * 7919 + cycle) % n].split()
            if words:
                c = f"{c} {words[cycle % len(words)]}"
        out_c.append(c)
    return pa.table({"URL": out_u, "TEXT": out_c})


def input_files(n: int, work: Path) -> list[str]:
    """Paths of the Parquet files holding the first ``n`` rows, generated on first use."""
    import pyarrow.parquet as pq
    files = max(1, -(-n // ROWS_PER_FILE))
    if n > ROWS_PER_FILE and n % ROWS_PER_FILE:
        raise SystemExit(f"size {n}: use a multiple of {ROWS_PER_FILE} above {ROWS_PER_FILE}")
    d = work / "parts"
    d.mkdir(parents=True, exist_ok=True)
    paths, real = [], None
    for j in range(files):
        p = d / f"part-{j:05d}.parquet"
        if not p.exists():
            real = real or _real_rows()
            tmp = p.with_suffix(".tmp")
            pq.write_table(_part(j, *real), tmp, compression="zstd")
            tmp.rename(p)
        paths.append(str(p))
    if n < ROWS_PER_FILE:  # a smoke-test size: the head of the first file
        p = d / f"head-{n}.parquet"
        if not p.exists():
            pq.write_table(pq.read_table(paths[0]).slice(0, n), p, compression="zstd")
        paths = [str(p)]
    return paths


def metadata_path(work: Path) -> str:
    sys.path.insert(0, str(HERE))
    import pyarrow.parquet as pq
    import bench_text_stage
    os.environ.setdefault("TMPDIR", str(work))
    captions = pq.read_table(DATA, columns=["TEXT"]).column("TEXT").to_pylist()
    return bench_text_stage.metadata_file(captions, 500_000)


# -- one run (child) --------------------------------------------------------------------------

def _shuffle_edges(proto) -> list[tuple[str, str, str]]:
    """(pcollection id, kind, name) for GroupByKey inputs and side inputs.  A GroupByKey inside a
    CombinePerKey is kind "combine": runners lift the combiner, so its input does not cross."""
    from apache_beam.portability.api import beam_runner_api_pb2
    ts = proto.components.transforms
    lifted = {sub for t in ts.values() if t.spec.urn == COMBINE_URN for sub in t.subtransforms}
    edges = []
    for tid, t in ts.items():
        if t.spec.urn == GBK_URN:
            for pc in t.inputs.values():
                edges.append((pc, "combine" if tid in lifted else "gbk", t.unique_name))
        elif t.spec.urn == PARDO_URN:
            payload = beam_runner_api_pb2.ParDoPayload.FromString(t.spec.payload)
            for tag in payload.side_inputs:
                edges.append((t.inputs[tag], "side_input", f"{t.unique_name} [{tag}]"))
    return edges


def _pcoll_bytes(result) -> dict[str, tuple[int, float]]:
    """{pcollection id: (elements, estimated bytes)} from the runner's monitoring infos."""
    from apache_beam.metrics import monitoring_infos as mi
    counts, sizes = {}, {}
    for m in result.monitoring_infos():
        pc = m.labels.get("PCOLLECTION")
        if pc is None:
            continue
        if m.urn == mi.ELEMENT_COUNT_URN:
            counts[pc] = counts.get(pc, 0) + mi.extract_metric_result_map_value(m)
        elif m.urn == mi.SAMPLED_BYTE_SIZE_URN:
            d = mi.extract_metric_result_map_value(m)
            s, c = sizes.get(pc, (0, 0))
            sizes[pc] = (s + d.sum, c + d.count)
    out = {}
    for pc, n in counts.items():
        s, c = sizes.get(pc, (0, 0))
        out[pc] = (n, n * s / c if c else 0.0)
    return out


def child(n: int, until: str, work: Path, metadata: str, beam_args: list[str]) -> dict:
    import apache_beam as beam

    from clipcurate.config import RunConfig
    from clipcurate.pipelines.curate import build, pipeline_options
    from clipcurate.sinks.files import join, read_bytes

    t0, c0 = time.time(), _cpu()
    out = tempfile.mkdtemp(prefix=f"run-{until}-{n}-", dir=work)
    cfg = RunConfig(until=until)
    cfg.ingest.inputs = input_files(n, work)
    cfg.ingest.url_col, cfg.ingest.caption_col = "URL", "TEXT"
    cfg.balance.metadata = metadata
    cfg.dedupe.caption_near = until == "near_dup_caption"
    cfg.dedupe.mode = "caption"
    cfg.sink.output, cfg.sink.report = out, False
    p = beam.Pipeline(options=pipeline_options(beam_args))
    if "inputs" in inspect.signature(build).parameters:  # older build(p, cfg, inputs)
        build(p, cfg, [{"path": f, "bytes": os.path.getsize(f), "sha256": ""} for f in cfg.ingest.inputs])
    else:
        build(p, cfg)
    edges = _shuffle_edges(p.to_runner_api())
    result = p.run()
    result.wait_until_finish()
    wall, cpu = time.time() - t0, _cpu() - c0
    manifest = json.loads(read_bytes(join(out, "manifest.json")))
    by_pc = _pcoll_bytes(result)
    shuffles = []
    for pc, kind, name in sorted(edges, key=lambda e: e[2]):
        elems, nbytes = by_pc.get(pc, (0, 0.0))
        shuffles.append({"kind": kind, "transform": name, "elements": elems, "bytes": round(nbytes)})
    partials = sum(b for pc, (_, b) in by_pc.items() if not pc.startswith("ref_PCollection"))
    shutil.rmtree(out, ignore_errors=True)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"n": n, "until": until, "cpu_s": cpu, "wall_s": wall, "peak_rss_mib": ru.ru_maxrss / 1024,
            "counts": manifest.get("counts", manifest.get("stages")), "shuffles": shuffles,
            "combiner_partials_bytes": round(partials), "load": os.getloadavg()[0]}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def _trace_rss(max_gib: float = 0.0) -> None:
    """Log this process's RSS every second, and the runner's stage starts (INFO), on stderr;
    with ``max_gib`` > 0, end the process (exit 3) when RSS passes it (a guard on a shared machine)."""
    import logging
    import threading
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("apache_beam.runners.portability.fn_api_runner.fn_runner.run_bundle").setLevel(logging.DEBUG)

    def loop():
        while True:
            rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            logging.getLogger("rss").info("RSS %.0f MiB", rss / 2**20)
            if max_gib and rss > max_gib * 2**30:
                logging.getLogger("rss").error("RSS over --max-rss-gib %s: stopping", max_gib)
                os._exit(3)
            time.sleep(1)
    threading.Thread(target=loop, daemon=True).start()


_BOOKKEEPING = {"AllCounts", "AllRejects", "ExampleRejects", "AllFiles", "AllStats", "ref"}


def trace_summary(log: Path) -> list[str]:
    """Peak RSS while each runner stage ran, from a ``--trace-rss`` log (stderr of a child):
    which fused step holds memory.  A stage is named by its first few transforms."""
    import re
    rows, name, start, peak, rss = [], "(pipeline construction)", None, 0, 0
    for line in log.read_text(errors="replace").splitlines():
        m = re.match(r"\S+ (\d\d:\d\d:\d\d),\d+ (RSS (\d+) MiB|Running bundle for stage (.*))", line)
        if not m:
            continue
        if m.group(3):
            rss = int(m.group(3))
            peak = max(peak, rss)
            continue
        rows.append((name, start, peak))
        steps = []
        for t in re.findall(r"ref_AppliedPTransform_([A-Za-z]+)|\(([A-Za-z]+)/", m.group(4)):
            label = t[0] or t[1]
            if label not in steps and label not in _BOOKKEEPING:
                steps.append(label)
        name, start, peak = " + ".join(steps[:6]) + (" ..." if len(steps) > 6 else ""), m.group(1), rss
    rows.append((name, start, peak))
    return [f"{start or '':>8}  {p:>8,} MiB  {n}" for n, start, p in rows]


# -- cost of 1 billion candidates -------------------------------------------------------------
# Dataflow list prices, us-central1, batch workers, as Beam 2.77's own cost benchmark holds them
# (apache_beam/testing/load_tests/dataflow_cost_consts.py: "found at
# https://cloud.google.com/dataflow/pricing"; read 2026-12-07).  That file lists no H100.
VCPU_HOUR = 0.056          # $ per vCPU-hour (VCPU_PER_HR_BATCH)
MEM_GB_HOUR = 0.003557     # $ per GB-hour of worker memory (MEM_PER_GB_HR_BATCH)
SHUFFLE_GB = 0.011         # $ per GB of Dataflow Shuffle data processed (SHUFFLE_PER_GB_BATCH)
GB_PER_VCPU = 3.75         # n1-standard workers
H100_HOUR = 11.06          # $ per H100-hour: ASSUMED, Compute Engine a3-highgpu-8g on demand / 8 (third-party
#                            price lists); not a Dataflow figure (A100 80GB there: 4.7137)
# Figures measured earlier (docs/benchmarks.md) and assumptions, per image / URL:
DOWNLOAD_OK_CPU_MS = 3.40  # CPU per downloaded image, whole process tree, default mode, 8k URLs (Download
#                            section, re-run 2026-12-07; 3.29 per extra image)
DOWNLOAD_FAIL_CPU_MS = 0.70  # ASSUMED per failed URL: the fetch process's CPU per image (no decode/encode)
DOWNLOAD_FAIL_RATE = 0.40  # ASSUMED share of surviving URLs that fail (dead links, 4xx/5xx, timeouts)
IMAGE_KB = 41.9            # mean stored image (256 px keep_ratio, q95) of 118 real photos, measured 2026-12-03
IMAGE_SHUFFLES = 2         # GroupByKeys that carry image bytes: dedupe_content, WriteShards
H200_IMG_S = 7530          # scoring end-to-end, ViT-B/32 bf16, 256 px, one H200 (Scoring section)
H100_VS_H200 = 0.9         # ASSUMED: same GH100 compute, less / slower HBM; not measured on an H100
BILLED_SHUFFLE_FACTOR = 2  # ASSUMED: bytes crossing a shuffle are billed when written and when read


def cost_table(runs: dict, n: int, last: str, pool: float = 1e9, cpu_per_candidate: float | None = None,
               survive: float | None = None) -> list[str]:
    """Markdown rows: vCPU-hours, shuffle GB, GPU-hours and dollars to curate ``pool`` candidates.
    ``cpu_per_candidate``: the text stages' CPU-s per candidate (default: the run at ``n``, fixed
    costs included; report() passes the marginal figure between the two largest sizes).  ``survive``:
    share of candidates that reach download (default: the run's; at 1e9 MetaCLIP's cap t drops more)."""
    r = runs[(n, last)]
    text_cpu = r["cpu_s"] / n if cpu_per_candidate is None else cpu_per_candidate
    text_shuffle = (sum(s["bytes"] for s in r["shuffles"] if s["kind"] == "gbk") + r["combiner_partials_bytes"]) / n
    survive = r["counts"]["write"]["in"] / n if survive is None else survive
    urls = pool * survive
    images = urls * (1 - DOWNLOAD_FAIL_RATE)
    dl_cpu = (images * DOWNLOAD_OK_CPU_MS + (urls - images) * DOWNLOAD_FAIL_CPU_MS) / 1e3
    rows = [("text stages (ingest, filter, dedupe_url, match + balance, write Parquet)", pool * text_cpu,
             pool * text_shuffle, 0.0),
            (f"download {urls / 1e6:,.0f} M URLs, {DOWNLOAD_FAIL_RATE:.0%} failing", dl_cpu, 0.0, 0.0),
            (f"dedupe_content + shards: {IMAGE_SHUFFLES} shuffles of {images / 1e6:,.0f} M images x {IMAGE_KB} KB",
             0.0, images * IMAGE_KB * 1024 * IMAGE_SHUFFLES, 0.0),
            (f"scoring on H100 ({H200_IMG_S * H100_VS_H200:,.0f} images/s)", 0.0, 0.0,
             images / (H200_IMG_S * H100_VS_H200) / 3600)]
    out = ["| step | vCPU-hours | shuffle GB | GPU-hours | $ vCPU + memory | $ shuffle | $ GPU | $ total |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    tot = [0.0] * 7
    for name, cpu_s, shuffle_b, gpu_h in rows:
        vh, gb = cpu_s / 3600, shuffle_b / 1e9
        c_cpu = vh * (VCPU_HOUR + GB_PER_VCPU * MEM_GB_HOUR)
        c_sh, c_gpu = gb * BILLED_SHUFFLE_FACTOR * SHUFFLE_GB, gpu_h * H100_HOUR
        vals = [vh, gb, gpu_h, c_cpu, c_sh, c_gpu, c_cpu + c_sh + c_gpu]
        tot = [a + b for a, b in zip(tot, vals)]
        out.append(f"| {name} | " + " | ".join(f"{v:,.0f}" for v in vals) + " |")
    out.append("| **total** | " + " | ".join(f"**{v:,.0f}**" for v in tot) + " |")
    return out


def hot_paths(rounds: int = 5) -> None:
    """The two per-candidate paths changed for #18 (item 3), against the previous code, in this
    process, interleaved, median (min-max) of ``rounds``: normalize_url (urlsplit for every URL
    before; a regex fast path for URLs already in normal form now) on the 10,000 real URLs, run
    twice per candidate (uid at ingest, dedupe_url key); and the dedupe_url keeper of a group of
    one record (a seeded keeper draw and two sorts before; returned as is now)."""
    import statistics
    import pyarrow.parquet as pq
    from clipcurate.dedupe.exact import annotate_group
    from clipcurate.dedupe.keep import DUP_OF, choose
    from clipcurate.ingest.rows import candidate
    from clipcurate.schemas.uid import _normalize_split, normalize_url

    t = pq.read_table(DATA, columns=["URL", "TEXT"])
    urls, caps = t.column("URL").to_pylist(), t.column("TEXT").to_pylist()
    recs = [candidate(u, c, source="x.parquet", offset=i, source_format="parquet")[1]
            for i, (u, c) in enumerate(zip(urls, caps))]

    def before_url():
        for u in urls:
            _normalize_split(u.strip())

    def after_url():
        for u in urls:
            normalize_url(u)

    def before_group():  # the previous annotate_group body, default rule "random"
        for r in recs:
            records = [r]
            keeper, _ = choose(((x["uid"], x.get("clip_score")) for x in records), "random", 0, "dedupe_url")
            out, kept = [], False
            for x in sorted(records, key=lambda x: x["uid"]):
                if x["uid"] == keeper and not kept:
                    kept = True
                    out.append(x)
                else:
                    out.append(dict(x, **{DUP_OF: keeper}))

    def after_group():
        for r in recs:
            annotate_group([r], "random", 0, "dedupe_url")

    res = {k: [] for k in ("url before", "url after", "group before", "group after")}
    for _ in range(rounds):
        for name, f in (("url before", before_url), ("url after", after_url),
                        ("group before", before_group), ("group after", after_group)):
            c0 = time.process_time()
            f()
            res[name].append((time.process_time() - c0) / len(urls) * 1e6)
    print(f"hot paths, us per call, median (min-max) of {rounds} interleaved rounds, load {os.getloadavg()[0]:.1f}:")
    for k, v in res.items():
        print(f"  {k:<13} {statistics.median(v):7.2f} ({min(v):.2f}-{max(v):.2f})")
    url = 2 * (statistics.median(res["url before"]) - statistics.median(res["url after"]))
    grp = statistics.median(res["group before"]) - statistics.median(res["group after"])
    print(f"  saved per candidate: {url:.1f} us (two normalize_url calls) + {grp:.1f} us (keeper of a "
          f"one-record group) = {url + grp:.1f} us")


# -- driver -----------------------------------------------------------------------------------

def run_child(n: int, until: str, args, beam_args: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", "--n", str(n), "--until", until, "--work", str(args.work)]
    r = subprocess.run(cmd + beam_args, capture_output=True, text=True)
    if r.returncode:
        sys.stderr.write(r.stderr[-4000:])
        raise SystemExit(f"child {until} n={n} failed ({r.returncode})")
    return json.loads(r.stdout.strip().splitlines()[-1])


def shuffle_stage(name: str) -> str:
    top = name.split("/", 1)[0].split(" [", 1)[0]
    return {"Ingest": "ingest", "TextFilter": "filter", "DedupeUrl": "dedupe_url", "NearDupCaption":
            "near_dup_caption", "MetaCLIP": "balance"}.get(top, f"sink ({top})")


def summarise(runs: dict[tuple[int, str], dict], sizes: list[int], stages: list[str], tol: float) -> list[str]:
    """Print the per-stage table and the flatness checks; return the lines of failed checks.

    Per-candidate CPU of a whole run falls with N while fixed costs (pipeline construction,
    language model load, automaton build) amortise, so flatness is checked on the *marginal*
    CPU: (CPU(N_b) - CPU(N_a)) / (N_b - N_a) for the first and the last pair of sizes.
    """
    def stage_cpu(n, i):
        return runs[(n, stages[i])]["cpu_s"] - (runs[(n, stages[i - 1])]["cpu_s"] if i else 0.0)

    def marginal(i, a, b):  # ms per candidate of stage i (i = None: whole run) between sizes a < b
        f = (lambda n: runs[(n, stages[-1])]["cpu_s"]) if i is None else (lambda n: stage_cpu(n, i))
        return (f(b) - f(a)) / (b - a) * 1e3

    pairs = list(zip(sizes, sizes[1:]))
    print("\nCPU-seconds per 1,000 candidates: per stage (difference between successive --until runs), "
          "whole run, marginal between sizes; peak RSS of the --until run")
    print(f"{'stage':<12}{'N':>10}{'stage':>9}{'cum':>8}{'marginal':>10}{'peak RSS MiB':>14}{'wall s':>8}{'load':>6}")
    for i, st in enumerate(stages):
        for k, n in enumerate(sizes):
            r = runs[(n, st)]
            m = f"{marginal(i, sizes[k - 1], n):>10.3f}" if k else f"{'':>10}"
            print(f"{st:<12}{n:>10,}{stage_cpu(n, i) / n * 1e3:>9.3f}{r['cpu_s'] / n * 1e3:>8.3f}{m}"
                  f"{r['peak_rss_mib']:>14,.0f}{r['wall_s']:>8.1f}{r['load']:>6.1f}")
    print("\nshuffle bytes per candidate (every GroupByKey / side input of the last stage's runs):")
    last = runs[(sizes[0], stages[-1])]
    names = [(s["kind"], s["transform"]) for s in last["shuffles"] if s["kind"] != "combine"]
    print(f"{'stage':<22}{'kind':<11}{'transform':<62}" + "".join(f"{n:>12,}" for n in sizes))
    shuffle_per = {}
    for kind, name in names:
        row = []
        for n in sizes:
            hit = [s for s in runs[(n, stages[-1])]["shuffles"] if s["transform"] == name]
            row.append(hit[0]["bytes"] / n if hit else 0.0)
        shuffle_per[name] = (kind, row)
        print(f"{shuffle_stage(name):<22}{kind:<11}{name[:60]:<62}" + "".join(f"{v:>12.2f}" for v in row))
    part = [runs[(n, stages[-1])]["combiner_partials_bytes"] / n for n in sizes]
    print(f"{'(all)':<22}{'combiner':<11}{'lifted combiner partials (per bundle)':<62}"
          + "".join(f"{v:>12.4f}" for v in part))

    fails = []

    def check(label, a, b):
        ok = abs(b - a) <= tol * abs(a) if a else abs(b) < 1e-9
        line = f"  {'ok      ' if ok else 'NOT FLAT'} {label}: {a:.4g} -> {b:.4g} ({(b / a - 1) * 100 if a else 0:+.1f} %)"
        print(line)
        if not ok:
            fails.append(line)

    if len(pairs) >= 2:
        (a0, b0), (a1, b1) = pairs[0], pairs[-1]
        print(f"\nflatness of marginal CPU (ms per candidate), {a0:,}->{b0:,} vs {a1:,}->{b1:,}, tolerance {tol:.0%}:")
        for i, st in enumerate(stages):
            check(f"{st}", marginal(i, a0, b0), marginal(i, a1, b1))
        check("whole run --until " + stages[-1], marginal(None, a0, b0), marginal(None, a1, b1))
    print(f"\nflatness of shuffle bytes per candidate, {sizes[0]:,} -> {sizes[-1]:,}, tolerance {tol:.0%}:")
    for name, (kind, row) in shuffle_per.items():
        if kind == "gbk" and row[0] > 1:
            check(name, row[0], row[-1])
    side = sum(row[-1] for kind, row in shuffle_per.values() if kind == "side_input")
    print(f"  side inputs are per run, not per candidate: {side * sizes[-1] / 2**20:.1f} MiB in all at "
          f"{sizes[-1]:,} (per candidate falls as N grows; not checked)")
    return fails


def report(runs, sizes, stages, tol, survive: float | None = None) -> None:
    fails = summarise(runs, sizes, stages, tol)
    marginal = None
    if len(sizes) >= 2:
        a, b = sizes[-2], sizes[-1]
        marginal = (runs[(b, stages[-1])]["cpu_s"] - runs[(a, stages[-1])]["cpu_s"]) / (b - a)
    print(f"\ncost to curate 1e9 candidates: text CPU {'marginal between the two largest sizes' if marginal else 'of the largest run'}"
          f", shuffle bytes of the run at {sizes[-1]:,} (per-candidate figures x 1e9):")
    print("\n".join(cost_table(runs, sizes[-1], stages[-1], cpu_per_candidate=marginal)))
    if survive is not None:
        print(f"\nthe same with {survive:.0%} of the candidates reaching download (--survive):")
        print("\n".join(cost_table(runs, sizes[-1], stages[-1], cpu_per_candidate=marginal, survive=survive)))
    print(f"\n{len(fails)} check(s) not flat" + (":\n" + "\n".join(fails) if fails else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="50000,150000,500000")
    ap.add_argument("--work", type=Path, default=Path("/tmp/clipcurate-scale"))
    ap.add_argument("--near-dup", action="store_true", help="also run near_dup_caption (MinHash-LSH; slow)")
    ap.add_argument("--tolerance", type=float, default=0.20)
    ap.add_argument("--repeat", type=int, default=1, help="runs per (size, stage); the one with least CPU is kept")
    ap.add_argument("--json", help="write all runs here")
    ap.add_argument("--from-json", help="print the summary of runs saved with --json, run nothing")
    ap.add_argument("--trace-summary", type=Path, help="print peak RSS per runner stage of a --trace-rss log")
    ap.add_argument("--hot-paths", action="store_true", help="time the per-candidate paths changed for issue #18 "
                    "against the previous code (in process) and exit")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int)
    ap.add_argument("--trace-rss", action="store_true", help="child: log RSS every second beside the runner's "
                    "stage log (stderr), to see which step holds memory")
    ap.add_argument("--max-rss-gib", type=float, default=0.0, help="child: stop (exit 3) above this RSS")
    ap.add_argument("--until", default="balance")
    ap.add_argument("--survive", type=float, help="also print the cost table with this share of candidates "
                    "reaching download (e.g. 0.25: MetaCLIP kept 400M of a 1.6B pool)")
    args, beam_args = ap.parse_known_args()
    if args.hot_paths:
        hot_paths()
        return
    if args.trace_summary:
        print("stage start  peak RSS  runner stage (first transforms)")
        print("\n".join(trace_summary(args.trace_summary)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child:
        if args.trace_rss or args.max_rss_gib:
            _trace_rss(args.max_rss_gib)
        print(json.dumps(child(args.n, args.until, args.work, metadata_path(args.work), beam_args)))
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    stages = [s for s in STAGES if args.near_dup or s != "near_dup_caption"]
    if args.from_json:
        runs = {tuple(r["key"]): r for r in json.loads(Path(args.from_json).read_text())}
        sizes = sorted({n for n, _ in runs})
        stages = [s for s in STAGES if (sizes[0], s) in runs]
        report(runs, sizes, stages, args.tolerance, args.survive)
        return
    metadata_path(args.work)
    for n in sizes:
        input_files(n, args.work)
    print(f"sizes {sizes}; stages {stages}; load {os.getloadavg()}; FnApiRunner in process, one worker")
    runs = {}
    for n in sizes:
        for st in stages:
            r = min((run_child(n, st, args, beam_args) for _ in range(args.repeat)), key=lambda x: x["cpu_s"])
            runs[(n, st)] = r
            print(f"  n={n:,} until={st}: cpu {r['cpu_s']:.1f} s, wall {r['wall_s']:.1f} s, "
                  f"peak RSS {r['peak_rss_mib']:,.0f} MiB, load {r['load']:.1f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps([dict(v, key=list(k)) for k, v in runs.items()], indent=1))
    report(runs, sizes, stages, args.tolerance, args.survive)


if __name__ == "__main__":
    main()
