"""Image work off the fetch process: ``ImagePool`` vs a ``ProcessPoolExecutor`` baseline.

The same 2,160 real photos (../shared/data/open-images-cc-test-images, x120) through
``process_image`` (keep_ratio 256, JPEG q95) three ways, same process, one after the other:

* baseline: ``concurrent.futures.ProcessPoolExecutor`` (forkserver, one worker per core),
  ``submit(process_image, body, cfg)`` per image -- what ImagePool used before;
* ``ImagePool(image_processes=-1)``: driver thread per worker, batched hand-over;
* ``ImagePool(image_processes=0)``: threads of this process (no pipes).

Prints images/s and this process's CPU per image (``time.process_time``: the feeder,
management and driver threads; the workers' own CPU is not in it), and checks that all
three give identical results.

    python benchmarks/bench_image_pool.py [--repeat 120]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import time
from pathlib import Path

from clipcurate.download.config import DownloadConfig
from clipcurate.download.image import process_image
from clipcurate.download.pool import ImagePool, _context, default_processes

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "open-images-cc-test-images"


def timed(submit, bodies) -> tuple[dict, list]:
    for f in [submit(b) for b in bodies[:20]]:  # warm: workers started, modules loaded
        f.result()
    c, t = time.process_time(), time.perf_counter()
    results = [f.result() for f in [submit(b) for b in bodies]]
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    assert all(r.status == "ok" for r in results)
    return {"img_per_s": round(len(bodies) / wall, 1), "parent_cpu_ms_per_img": round(1e3 * cpu / len(bodies), 3)}, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=120)
    a = ap.parse_args()
    bodies = [p.read_bytes() for p in sorted(PHOTOS.glob("*.jpg"))] * a.repeat
    cfg = DownloadConfig(image_size=256, resize_mode="keep_ratio", encode_format="jpg", encode_quality=95)
    out = {"images": len(bodies), "cores": os.cpu_count(), "load_before": round(os.getloadavg()[0], 2)}

    with concurrent.futures.ProcessPoolExecutor(default_processes(), mp_context=_context()) as ex:
        out["process_pool_executor"], base = timed(lambda b: ex.submit(process_image, b, cfg), bodies)
    for name, n in (("image_pool_processes", -1), ("image_pool_threads", 0)):
        pool = ImagePool(DownloadConfig(**{**cfg.__dict__, "image_processes": n}))
        try:
            out[name], got = timed(pool.submit, bodies)
        finally:
            pool.close()
        assert got == base, f"{name}: results differ from the baseline"
    b, p = out["process_pool_executor"], out["image_pool_processes"]
    out["speedup_vs_baseline"] = round(p["img_per_s"] / b["img_per_s"], 2)
    out["parent_cpu_ratio_vs_baseline"] = round(p["parent_cpu_ms_per_img"] / b["parent_cpu_ms_per_img"], 2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
