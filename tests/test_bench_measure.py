"""benchmarks/_measure.py counts the CPU of the whole process tree, grandchildren that are
never reaped included, by each method available here (cgroup where it can create one,
/proc sampling always).  Not a timing test: the grandchild burns a fixed amount of its own
CPU time (``time.process_time``), whatever the load, and the bound is generous."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
BURN = 0.6  # CPU seconds the grandchild spends

SCRIPT = f"""
import json, resource, subprocess, sys
sys.path.insert(0, {str(BENCH)!r})
import _measure
GRAND = "import time\\nt = time.process_time()\\nwhile time.process_time() - t < {BURN}: pass\\n"
CHILD = ("import subprocess, sys, time\\n"
         "subprocess.Popen([sys.executable, '-c', " + repr(GRAND) + "])\\n"
         "time.sleep(1.0)\\n")  # exits without waiting: nobody reaps the grandchild
r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
with _measure.measure("tree", settle=60) as m:
    subprocess.run([sys.executable, "-c", CHILD], check=True)
r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
r = m.result
print(json.dumps({{"cpu": r.cpu_s, "user": r.user_s, "sys": r.sys_s, "method": r.method,
                  "reaped": r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime,
                  "procs": r.max_procs, "left": r.leftover_procs, "rss": r.peak_rss, "wall": r.wall_s,
                  "load": [r.load_before, r.load_after]}}))
"""


@pytest.mark.parametrize("method", ["auto", "proc"])
def test_grandchild_cpu_is_counted(method):
    env = {**os.environ, "CLIPCURATE_BENCH_MEASURE": method}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if method == "proc":
        assert r["method"] == "proc"
    else:
        assert r["method"] in ("cgroup2", "cgroup1-cpuacct", "proc")
    # getrusage(RUSAGE_CHILDREN) sees the reaped child only, not the grandchild's busy loop
    assert r["reaped"] < BURN * 0.8
    # the tree measurement counts it (the /proc sampler may miss at most its last 0.1 s)
    assert r["cpu"] >= BURN * 0.75, r
    assert abs(r["user"] + r["sys"] - r["cpu"]) < 0.1 + 0.1 * r["cpu"]  # tick-based split vs exact total
    assert r["procs"] >= 3  # this process, the child, the grandchild at one sample
    assert r["left"] == 0  # it waited until the grandchild had exited
    assert r["rss"] > 5 * 2**20
    assert all(x >= 0 for x in r["load"])
    assert r["wall"] > 0.4  # the child's sleep


def test_summary_helpers():
    sys.path.insert(0, str(BENCH))
    try:
        import _measure
    finally:
        sys.path.remove(str(BENCH))
    M = _measure.Measurement
    res = {"ours": [M(cpu_s=1.0, wall_s=1.0), M(cpu_s=2.0, wall_s=2.0), M(cpu_s=3.0, wall_s=3.0)],
           "base": [M(cpu_s=4.0, wall_s=4.0), M(cpu_s=4.0, wall_s=4.0), M(cpu_s=9.0, wall_s=9.0)]}
    assert _measure.spread([3.0, 1.0, 2.0]) == "2 (1-3)"
    line = _measure.ratio(res, "ours", "base")
    assert "2.00x median" in line and "per round 2.00-4.00x" in line
    text = _measure.table(res, items=1000, unit="captions")
    row = text.splitlines()[1]
    assert "2000 (1000-3000)" in row and "500 (333-1,000)" in row  # us/caption, captions/CPU-s
