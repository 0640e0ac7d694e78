"""Whole-process-tree measurement for the benchmarks in this folder.

Every benchmark measures a block of work with :class:`measure` (a context manager) or
runs alternatives A/B interleaved with :func:`interleave`, and prints min / median / max
over the repeats with :func:`table` and :func:`ratio`.  A measurement holds:

* ``cpu_s`` (``user_s`` + ``sys_s``): CPU of the **whole process tree** during the block:
  this process, its threads, children and grandchildren, including pool workers that are
  never reaped (multiprocessing's forkserver children, img2dataset's pool, Beam workers);
* ``wall_s``; ``peak_rss`` / ``peak_pss``: the largest sum over the tree at one sample
  (every ``interval`` s; PSS from ``/proc/PID/smaps_rollup`` every ``pss_interval`` s,
  where readable), at least this process's own peak (``VmHWM``, reset at the start);
* ``load_before`` / ``load_after``: the 1-minute load average around the block.

How the CPU is counted (``METHOD`` says which was used):

1. ``cgroup2`` (preferred): on first use this process moves itself into a fresh cgroup v2
   (``<cgroup2 mount>/<its cgroup>/clipcurate-bench-<pid>``).  Everything it starts
   afterwards is born there, and the kernel charges every task's CPU to it whether or not
   anyone waits for it: ``cpu.stat`` ``usage_usec`` is exact.  Needs write access to the
   cgroup tree (root, or a delegated cgroup).  Processes that must not be counted (the
   loopback web server standing for remote hosts) are moved out with :func:`exclude`.
2. ``cgroup1-cpuacct``: the same with a v1 ``cpuacct`` hierarchy.
3. ``proc`` (fallback, no privileges): ``/proc/PID/stat`` of this process and its
   descendants, sampled every ``interval`` s until the block ends; a process keeps being
   sampled after it is re-parented.  It misses the CPU a process burns after its last
   sample (at most ``interval`` per short-lived process) and processes that start and
   exit between two samples, so it is a lower bound.

The sampler thread's own CPU is subtracted.  Load averages are the machine's, not ours:
on a shared machine, report them with the figures.

    from _measure import measure, interleave, table, ratio
    res = interleave({"ours": f, "datasketch bulk": g}, repeat=5)
    table(res, items=10_000, unit="captions"); ratio(res, "ours", "datasketch bulk")
"""
from __future__ import annotations

import atexit
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_NAME = f"clipcurate-bench-{os.getpid()}"
METHOD: str | None = None  # "cgroup2", "cgroup1-cpuacct" or "proc", set by setup()
_CG: Path | None = None  # our cgroup directory
_HOME: Path | None = None  # where this process was (moved back at exit)
_EXCLUDED: set[int] = set()


def _mounts() -> list[tuple[str, str, list[str]]]:
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        p = line.split()
        if len(p) >= 4:
            out.append((p[2], p[1].replace("\\040", " "), p[3].split(",")))
    return out


def _own_cgroup(v2: bool, controller: str = "") -> str | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hid, ctrls, path = line.split(":", 2)
        if (v2 and hid == "0" and ctrls == "") or (not v2 and controller in ctrls.split(",")):
            return path
    return None


def _candidates() -> list[tuple[str, Path]]:
    """(method, directory of our current cgroup) pairs to try, best first."""
    out = []
    try:
        mounts = _mounts()
        rel2 = _own_cgroup(True)
        rel1 = _own_cgroup(False, "cpuacct")
    except OSError:
        return out
    for fstype, mnt, opts in mounts:
        if fstype == "cgroup2" and rel2 is not None:
            out.append(("cgroup2", Path(mnt) / rel2.lstrip("/")))
    for fstype, mnt, opts in mounts:
        if fstype == "cgroup" and "cpuacct" in opts and rel1 is not None:
            out.append(("cgroup1-cpuacct", Path(mnt) / rel1.lstrip("/")))
    return out


def _cleanup_stale(parent: Path) -> None:
    """Remove empty cgroups left by earlier benchmark processes that died."""
    for d in parent.glob("clipcurate-bench-*"):
        try:
            pid = int(d.name.rsplit("-", 1)[1])
            if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
                d.rmdir()  # fails (harmlessly) while a process is still in it
        except (OSError, ValueError):
            pass


def setup(force: str | None = None) -> str:
    """Pick the CPU method (once per process); ``force="proc"`` skips the cgroups.  Call it (or
    :func:`machine`) before starting long-lived workers: a process started earlier stays outside
    the cgroup, and so do its later children (e.g. multiprocessing's forkserver)."""
    global METHOD, _CG, _HOME
    if METHOD is not None:
        return METHOD
    if force != "proc" and os.environ.get("CLIPCURATE_BENCH_MEASURE") != "proc":
        for method, home in _candidates():
            cg = home / _NAME
            try:
                _cleanup_stale(home)
                cg.mkdir(exist_ok=True)
                (cg / "cgroup.procs").write_text(str(os.getpid()))
                if os.getpid() not in _procs_of(cg):
                    raise OSError("not moved")
                _usage(cg, method)
            except (OSError, KeyError, ValueError):
                try:  # back where it was, then remove the cgroup
                    (home / "cgroup.procs").write_text(str(os.getpid()))
                except OSError:
                    pass
                try:
                    cg.rmdir()
                except OSError:
                    pass
                continue
            METHOD, _CG, _HOME = method, cg, home
            atexit.register(_teardown)
            return METHOD
    METHOD = "proc"
    return METHOD


def _teardown() -> None:
    try:
        (_HOME / "cgroup.procs").write_text(str(os.getpid()))
        _CG.rmdir()  # fails while a child is left in it; a later setup() removes it
    except OSError:
        pass


def _procs_of(cg: Path) -> list[int]:
    return [int(x) for x in (cg / "cgroup.procs").read_text().split()]


def _usage(cg: Path, method: str) -> tuple[float, float, float]:
    """(total, user, system) CPU seconds charged to the cgroup so far."""
    if method == "cgroup2":
        kv = dict(line.split() for line in (cg / "cpu.stat").read_text().splitlines())
        return int(kv["usage_usec"]) / 1e6, int(kv["user_usec"]) / 1e6, int(kv["system_usec"]) / 1e6
    kv = dict(line.split() for line in (cg / "cpuacct.stat").read_text().splitlines())
    total = int((cg / "cpuacct.usage").read_text()) / 1e9
    return total, int(kv["user"]) / _TICK, int(kv["system"]) / _TICK


def exclude(pid: int) -> None:
    """Leave process ``pid`` (and what it starts later) out of the measured tree, e.g. a
    loopback server that stands for remote hosts.  Call it right after starting it."""
    setup()
    _EXCLUDED.add(pid)
    if METHOD != "proc":
        try:
            (_HOME / "cgroup.procs").write_text(str(pid))
        except OSError:
            pass


def _stat(pid: int) -> tuple[int, int, tuple[float, float]] | None:
    """(ppid, start time in ticks, (user, system) CPU seconds) of a process, None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            rest = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(rest[1]), int(rest[19]), (int(rest[11]) / _TICK, int(rest[12]) / _TICK)


def _descendants(root: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st is not None:
                kids.setdefault(st[0], []).append(int(d))
    out, stack = [], [root]
    while stack:
        p = stack.pop()
        if p in _EXCLUDED:
            continue
        out.append(p)
        stack += kids.get(p, [])
    return out


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _pss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _hwm_self() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class Measurement:
    label: str = ""
    wall_s: float = 0.0
    cpu_s: float = 0.0
    user_s: float = 0.0
    sys_s: float = 0.0
    peak_rss: int = 0
    peak_pss: int | None = None
    load_before: float = 0.0
    load_after: float = 0.0
    max_procs: int = 1
    leftover_procs: int = 0
    method: str = ""
    value: Any = field(default=None, repr=False)


class measure:
    """``with measure("label") as m: work()`` then ``m.result`` (a :class:`Measurement`).

    ``settle``: at the end, wait up to this many seconds for processes started during the
    block to exit (so a pool's last work is counted); those still alive are reported in
    ``leftover_procs`` (their CPU up to now is counted)."""

    def __init__(self, label: str = "", *, interval: float = 0.1, pss: bool = True, pss_interval: float = 1.0,
                 settle: float = 1.0):
        self.label, self.interval, self.pss, self.pss_interval, self.settle = label, interval, pss, pss_interval, settle
        self.result: Measurement | None = None

    # -- the process tree ------------------------------------------------------------
    def _pids(self) -> list[int]:
        if METHOD == "proc":  # descendants, and processes seen before that were re-parented
            pids = set(_descendants(os.getpid()))
            for pid, start in list(getattr(self, "_last", {})):
                st = _stat(pid) if pid not in pids and pid not in _EXCLUDED else None
                if st is not None and st[1] == start:
                    pids.add(pid)
            return sorted(pids)
        try:
            return _procs_of(_CG)
        except OSError:
            return [os.getpid()]

    def _proc_cpu(self) -> None:
        """proc method: record every tree process's CPU (first and latest sample)."""
        for pid in self._pids():
            st = _stat(pid)
            if st is None:
                continue
            key = (pid, st[1])
            if key not in self._first:
                self._first[key] = (0.0, 0.0) if self._started else st[2]
            self._last[key] = st[2]

    def _sample(self, with_pss: bool) -> None:
        pids = self._pids()
        self._max_procs = max(self._max_procs, len(pids))
        self._peak_rss = max(self._peak_rss, sum(_rss(p) for p in pids))
        if with_pss:
            vals = [_pss(p) for p in pids]
            if all(v is not None for v in vals):
                self._peak_pss = max(self._peak_pss or 0, sum(vals))
        if METHOD == "proc":
            self._proc_cpu()

    def _loop(self) -> None:
        t0 = time.thread_time()
        next_pss = 0.0
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            with_pss = self.pss and now >= next_pss
            if with_pss:
                next_pss = now + self.pss_interval
            self._sample(with_pss)
        self._sampler_cpu = time.thread_time() - t0

    def _cpu(self) -> tuple[float, float, float]:
        if METHOD != "proc":
            return _usage(_CG, METHOD)
        r = os.times()
        return r.user + r.system, r.user, r.system

    # -- the block ---------------------------------------------------------------------
    def __enter__(self) -> "measure":
        setup()
        self._first: dict = {}
        self._last: dict = {}
        self._started = False
        self._max_procs, self._peak_rss, self._peak_pss, self._sampler_cpu = 1, 0, None, 0.0
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset this process's VmHWM
        except OSError:
            pass
        self._pids0 = set(self._pids())
        if METHOD == "proc":
            self._proc_cpu()
        self._started = True
        self._sample(self.pss)
        self._load0 = os.getloadavg()[0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="measure-sampler", daemon=True)
        self._cpu0 = self._cpu()
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self._t0
        deadline = time.monotonic() + self.settle
        while time.monotonic() < deadline and set(self._pids()) - self._pids0:
            time.sleep(0.05)
        self._stop.set()
        self._thread.join()
        self._sample(False)
        cpu1 = self._cpu()
        if METHOD == "proc":  # this process exactly (os.times), the others from their samples
            ou = sum(self._last[k][0] - self._first[k][0] for k in self._last if k[0] != os.getpid())
            os_ = sum(self._last[k][1] - self._first[k][1] for k in self._last if k[0] != os.getpid())
            user, system = cpu1[1] - self._cpu0[1] + ou, cpu1[2] - self._cpu0[2] + os_
            total = user + system
        else:
            total, user, system = (b - a for a, b in zip(self._cpu0, cpu1))
        total -= self._sampler_cpu
        user -= self._sampler_cpu
        self.result = Measurement(
            label=self.label, wall_s=wall, cpu_s=max(0.0, total), user_s=max(0.0, user), sys_s=system,
            peak_rss=max(self._peak_rss, _hwm_self()), peak_pss=self._peak_pss,
            load_before=self._load0, load_after=os.getloadavg()[0], max_procs=self._max_procs,
            leftover_procs=len(set(self._pids()) - self._pids0), method=METHOD)


def run(label: str, fn: Callable[[], Any], **kw) -> Measurement:
    """Measure one call of ``fn``; its return value is in ``.value``."""
    with measure(label, **kw) as m:
        value = fn()
    m.result.value = value
    return m.result


def interleave(runs: dict[str, Callable[[], Any]], repeat: int = 3, *, warmup: bool = False,
               verbose: bool = True, **kw) -> dict[str, list[Measurement]]:
    """Run every alternative ``repeat`` times, interleaved A B C, C B A, A B C, ... so a change
    of machine load hits all of them alike; ``warmup`` runs each once first, unmeasured."""
    if warmup:
        for fn in runs.values():
            fn()
    out: dict[str, list[Measurement]] = {k: [] for k in runs}
    names = list(runs)
    for r in range(repeat):
        for name in (names if r % 2 == 0 else names[::-1]):
            m = run(name, runs[name], **kw)
            out[name].append(m)
            if verbose:
                print(f"  [{r + 1}/{repeat}] {name}: wall {m.wall_s:.3f} s, cpu {m.cpu_s:.3f} s, "
                      f"load {m.load_before:.1f}", flush=True)
    return out


def spread(values: list[float], fmt: str = "{:.3g}") -> str:
    """``median (min-max)``."""
    if not values:
        return "-"
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def machine() -> str:
    """One line: cores, load average, CPU method."""
    setup()
    la = os.getloadavg()
    where = f" {_CG}" if _CG else ""
    return (f"{os.cpu_count()} cores, load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}; "
            f"CPU = whole process tree by {METHOD}{where}")


def table(results: dict[str, list[Measurement]], items: int | dict[str, int] | None = None,
          unit: str = "items") -> str:
    """Print (and return) one row per alternative: median (min-max) of wall, tree CPU,
    CPU per item, items per CPU-second, peak RSS/PSS, and the load range."""
    lines = [f"{'run':<48} {'n':>2} {'wall s':>22} {'CPU s (tree)':>22} "
             f"{'CPU us/' + unit:>24} {unit + '/CPU-s':>26} {'peak RSS MiB':>16} {'PSS MiB':>8} {'load':>10}"]
    for name, ms in results.items():
        n = items.get(name) if isinstance(items, dict) else items
        per = spread([m.cpu_s / n * 1e6 for m in ms], "{:.4g}") if n else "-"
        rate = spread([n / m.cpu_s for m in ms if m.cpu_s > 0], "{:,.0f}") if n else "-"
        pss = [m.peak_pss for m in ms if m.peak_pss is not None]
        loads = [m.load_before for m in ms] + [m.load_after for m in ms]
        lines.append(f"{name:<48} {len(ms):>2} {spread([m.wall_s for m in ms], '{:.3g}'):>22} "
                     f"{spread([m.cpu_s for m in ms], '{:.3g}'):>22} {per:>24} {rate:>26} "
                     f"{max(m.peak_rss for m in ms) / 2**20:>16,.0f} "
                     f"{(max(pss) / 2**20 if pss else float('nan')):>8,.0f} "
                     f"{min(loads):>4.1f}-{max(loads):<4.1f}")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def ratio(results: dict[str, list[Measurement]], ours: str, base: str, key: str = "cpu_s",
          items: int | dict[str, int] | None = None) -> str:
    """Print (and return) base / ours for ``key`` (per item when ``items`` differ by run):
    the ratio of the medians, and the range of the per-round ratios (round r of each run
    next to each other)."""
    def per(name):
        n = items.get(name, 1) if isinstance(items, dict) else 1
        return [getattr(m, key) / n for m in results[name]]
    a, b = per(ours), per(base)
    pairs = [y / x for x, y in zip(a, b) if x > 0]
    med = statistics.median(b) / statistics.median(a) if statistics.median(a) > 0 else float("nan")
    text = (f"{base} / {ours} ({key}{' per item' if isinstance(items, dict) else ''}): {med:.2f}x median"
            + (f", per round {min(pairs):.2f}-{max(pairs):.2f}x" if pairs else ""))
    print(text, flush=True)
    return text
