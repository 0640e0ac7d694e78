"""Image work off the fetch process: ``ImagePool`` vs a ``ProcessPoolExecutor`` baseline.

The same 2,160 real photos (../shared/data/open-images-cc-test-images, x120) through
``process_image`` (keep_ratio 256, JPEG q95) three ways, same process, one after the other:

* baseline: ``concurrent.futures.ProcessPoolExecutor`` (forkserver, one worker per core),
  ``submit(process_image, body, cfg)`` per image -- what ImagePool used before;
* ``ImagePool(image_processes=-1)``: driver thread per worker, batched hand-over;
* ``ImagePool(image_processes=0)``: threads of this process (no pipes).

Prints, per way, median (min-max) over ``--rounds`` interleaved rounds (order reversed
every other round): images/s (wall), CPU per image of the **whole process tree** (this
process and the worker processes, ``_measure``), peak RSS/PSS of the tree, and this
process's own CPU per image (``time.process_time``: the feeder, management and driver
threads); and checks that all three give identical results.

    python benchmarks/bench_image_pool.py [--repeat 120 --rounds 3]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, measure, table  # noqa: E402

from clipcurate.download.config import DownloadConfig  # noqa: E402
from clipcurate.download.image import process_image
from clipcurate.download.pool import ImagePool, _context, default_processes

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "open-images-cc-test-images"


def timed(name, submit, bodies) -> tuple[dict, list, object]:
    for f in [submit(b) for b in bodies[:20]]:  # warm: workers started, modules loaded
        f.result()
    c = time.process_time()
    with measure(name) as m:
        results = [f.result() for f in [submit(b) for b in bodies]]
    cpu, r = time.process_time() - c, m.result
    assert all(x.status == "ok" for x in results)
    return {"img_per_s": round(len(bodies) / r.wall_s, 1), "parent_cpu_ms_per_img": round(1e3 * cpu / len(bodies), 3),
            "tree_cpu_ms_per_img": round(1e3 * r.cpu_s / len(bodies), 3)}, results, r


def run_one(name, n, cfg, bodies):
    if name == "process_pool_executor":
        with concurrent.futures.ProcessPoolExecutor(default_processes(), mp_context=_context()) as ex:
            return timed(name, lambda b: ex.submit(process_image, b, cfg), bodies)
    pool = ImagePool(DownloadConfig(**{**cfg.__dict__, "image_processes": n}))
    try:
        return timed(name, pool.submit, bodies)
    finally:
        pool.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--image-nice", type=int, default=DownloadConfig.image_nice,
                    help="niceness ImagePool adds to its workers (the executor's workers get none)")
    a = ap.parse_args()
    bodies = [p.read_bytes() for p in sorted(PHOTOS.glob("*.jpg"))] * a.repeat
    cfg = DownloadConfig(image_size=256, resize_mode="keep_ratio", encode_format="jpg", encode_quality=95,
                         image_nice=a.image_nice)
    out = {"images": len(bodies), "cores": os.cpu_count(), "load_before": round(os.getloadavg()[0], 2),
           "image_nice": a.image_nice}

    print(machine())
    ways = [("process_pool_executor", None), ("image_pool_processes", -1), ("image_pool_threads", 0)]
    rows: dict = {w: [] for w, _ in ways}
    tree: dict = {w: [] for w, _ in ways}
    base = None
    for r in range(a.rounds):
        for name, n in (ways if r % 2 == 0 else ways[::-1]):
            row, got, m = run_one(name, n, cfg, bodies)
            rows[name].append(row)
            tree[name].append(m)
            base = got if base is None and name == "process_pool_executor" else base
            if base is not None:
                assert got == base, f"{name}: results differ from the baseline"
    med = {w: {k: statistics.median(x[k] for x in v) for k in v[0]} for w, v in rows.items()}
    out.update({w: {k: f"{round(statistics.median(x[k] for x in v), 3)} ({min(x[k] for x in v)}-{max(x[k] for x in v)})"
                    for k in v[0]} for w, v in rows.items()})
    b, p = med["process_pool_executor"], med["image_pool_processes"]
    out["speedup_vs_baseline"] = round(p["img_per_s"] / b["img_per_s"], 2)
    out["parent_cpu_ratio_vs_baseline"] = round(p["parent_cpu_ms_per_img"] / b["parent_cpu_ms_per_img"], 2)
    out["tree_cpu_ratio_vs_baseline"] = round(p["tree_cpu_ms_per_img"] / b["tree_cpu_ms_per_img"], 2)
    out["load_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, indent=1))
    table(tree, items=len(bodies), unit="img")


if __name__ == "__main__":
    main()
