"""A live progress view for local runs: one line per stage, redrawn on stderr.

Beam's in-process runners return metrics only when the pipeline is done, so progress
uses a side channel that never touches outputs:

* :func:`live` (the launcher) makes a temporary directory, names it in the environment
  variable ``CLIPCURATE_PROGRESS_DIR`` (worker processes inherit it), and polls it from a
  thread while the pipeline runs;
* each :class:`~clipcurate.pipelines.stage.CountingDoFn` asks :func:`bundle_progress` for
  a tracker; while the variable is set, it adds the bundle's running counts (in, kept,
  dropped by reason) to a per-process JSON file there, at most every ``INTERVAL`` seconds
  and at the end of each bundle.  Without the variable (Dataflow, tests, pipes) it does nothing.

The view is on when stderr is a terminal; ``CLIPCURATE_PROGRESS=1`` forces it on (plain
blocks of lines, no cursor movement, when not a terminal) and ``=0`` off.  Counts shown
are for display only: a retried bundle may count twice here, never in the manifest.
On Dataflow the same counts are Beam counters (namespace ``clipcurate``, ``stage.key``).
"""
from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from typing import Any, Callable, Iterator, TextIO

ENV_DIR = "CLIPCURATE_PROGRESS_DIR"
ENV_FORCE = "CLIPCURATE_PROGRESS"
INTERVAL = 0.5  # seconds between publishes per process, and between redraws
PLAIN_INTERVAL = 5.0  # seconds between blocks when the stream is not a terminal

# display order; stages not named here follow in order of appearance
ORDER = ("resume", "ingest", "filter", "dedupe_url", "near_dup_caption", "match", "balance", "download",
         "dedupe_content", "near_dup", "decontam", "safety", "score", "score_filter")


# -- worker side ----------------------------------------------------------------------

class _Publisher:
    """This process's running totals per stage, written atomically to one JSON file."""

    def __init__(self, directory: str):
        self.directory = directory
        self.path = os.path.join(directory, f"{os.getpid()}-{uuid.uuid4().hex}.json")
        self.totals: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.lock = threading.Lock()
        self.next_write = 0.0

    def add(self, stage: str, delta: collections.Counter, force: bool) -> None:
        with self.lock:
            self.totals[stage].update(delta)
            now = time.monotonic()
            if not force and now < self.next_write:
                return
            self.next_write = now + INTERVAL
            tmp = f"{self.path}.tmp"
            try:
                with open(tmp, "w", encoding="utf-8") as fh:
                    json.dump({s: dict(c) for s, c in self.totals.items()}, fh)
                os.replace(tmp, self.path)
            except OSError:  # the launcher removed the directory: the run is over
                pass


_publisher: _Publisher | None = None
_publisher_lock = threading.Lock()


def _current_publisher() -> _Publisher | None:
    global _publisher
    directory = os.environ.get(ENV_DIR)
    if not directory:
        return None
    with _publisher_lock:
        if _publisher is None or _publisher.directory != directory:
            _publisher = _Publisher(directory)
        return _publisher


class BundleProgress:
    """Publishes a bundle's growing counts (a Counter the DoFn keeps) as deltas."""

    def __init__(self, stage: str, publisher: _Publisher, clock: Callable[[], float] = time.monotonic):
        self.stage, self.publisher, self.clock = stage, publisher, clock
        self.sent: collections.Counter = collections.Counter()
        self.next = clock() + INTERVAL

    def tick(self, counts: collections.Counter) -> None:
        """Cheap per record: publishes at most every INTERVAL seconds."""
        if self.clock() >= self.next:
            self._send(counts, force=False)
            self.next = self.clock() + INTERVAL

    def finish(self, counts: collections.Counter) -> None:
        self._send(counts, force=True)

    def _send(self, counts: collections.Counter, force: bool) -> None:
        delta = counts - self.sent
        if delta or force:
            self.publisher.add(self.stage, delta, force)
            self.sent = collections.Counter(counts)


def bundle_progress(stage: str) -> BundleProgress | None:
    """A tracker for one bundle of ``stage``, or None when no progress view is listening."""
    pub = _current_publisher()
    return BundleProgress(stage, pub) if pub is not None else None


# -- launcher side --------------------------------------------------------------------

def read_totals(directory: str) -> dict[str, collections.Counter]:
    """Sum the per-process files in ``directory``: {stage: Counter(key -> n)}."""
    out: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return {}
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            continue  # replaced while we read it: next poll
        for stage, counts in data.items():
            out[stage].update(counts)
    return dict(out)


def _fmt_duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class View:
    """Turns successive totals into one line per stage: in, kept, rate, ETA, drops by reason.

    ``totals_known``: {stage: (count key, total)} where the amount of work is known up front
    (ingest: input files), for an ETA.  ``clock`` is injectable for tests."""

    def __init__(self, totals_known: dict[str, tuple[str, int]] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.known = totals_known or {}
        self.clock = clock
        self.first: dict[str, float] = {}
        self.last_change: dict[str, tuple[float, int]] = {}
        self.previous = clock()  # a stage first seen now started after the previous look

    def lines(self, totals: dict[str, collections.Counter]) -> list[str]:
        now = self.clock()
        order = {s: i for i, s in enumerate(ORDER)}
        stages = sorted(totals, key=lambda s: (order.get(s, len(ORDER)), s))
        lines = [self._line(s, totals[s], now) for s in stages]
        self.previous = now
        return lines

    def _line(self, stage: str, c: collections.Counter, now: float) -> str:
        n_in = c.get("in", 0)
        self.first.setdefault(stage, self.previous if n_in else now)
        if self.last_change.get(stage, (0, -1))[1] != n_in:
            self.last_change[stage] = (now, n_in)
        elapsed = self.last_change[stage][0] - self.first[stage]
        rate = f"{n_in / elapsed:>9,.1f}/s" if elapsed > 0 and n_in else f"{'-':>11}"
        drops = sorted(((k.split(":", 1)[1], v) for k, v in c.items() if k.startswith("dropped:") and v),
                       key=lambda kv: (-kv[1], kv[0]))
        parts = [f"{stage:<17}in {n_in:>10,}  kept {c.get('kept', 0):>10,}  {rate}"]
        if stage in self.known:
            key, total = self.known[stage]
            done = c.get(key, 0)
            parts.append(f"{key} {done:,}/{total:,}")
            if 0 < done < total:
                parts.append(f"ETA {_fmt_duration((now - self.first[stage]) / done * (total - done))}")
        if drops:
            label = "ok={:,} ".format(c.get("kept", 0)) if stage == "download" else ""
            parts.append(label + " ".join(f"{r}={n:,}" for r, n in drops))
        return "  ".join(parts)


def enabled(stream: TextIO) -> bool:
    """On for a terminal; CLIPCURATE_PROGRESS=1/0 forces it on/off."""
    force = os.environ.get(ENV_FORCE, "").strip().lower()
    if force in ("1", "true", "yes", "on"):
        return True
    if force in ("0", "false", "no", "off"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _Drawer:
    """Redraws the block in place on a terminal; prints whole blocks (when changed) otherwise."""

    def __init__(self, stream: TextIO, tty: bool):
        self.stream, self.tty, self.height, self.previous = stream, tty, 0, None

    def draw(self, lines: list[str], final: bool = False) -> None:
        if not lines or (lines == self.previous and not final):
            return
        if self.tty:  # lines cut to the terminal's width, so that none wraps and the redraw stays in place
            width = max(20, shutil.get_terminal_size().columns - 1)
            up = f"\x1b[{self.height}F" if self.height else ""
            self.stream.write(up + "".join(f"\x1b[2K{line[:width]}\n" for line in lines))
            self.height = len(lines)
        elif lines != self.previous:
            self.stream.write("".join(f"progress {line}\n" for line in lines))
        self.stream.flush()
        self.previous = lines


@contextlib.contextmanager
def live(totals_known: dict[str, tuple[str, int]] | None = None, stream: TextIO | None = None) -> Iterator[None]:
    """While the body runs a pipeline, show its per-stage progress on ``stream`` (stderr).
    Does nothing when :func:`enabled` says off."""
    stream = stream or sys.stderr
    if not enabled(stream):
        yield
        return
    tty = bool(getattr(stream, "isatty", lambda: False)())
    directory = tempfile.mkdtemp(prefix="clipcurate-progress-")
    before = os.environ.get(ENV_DIR)
    os.environ[ENV_DIR] = directory
    view, drawer, stop = View(totals_known), _Drawer(stream, tty), threading.Event()

    def loop():
        while not stop.wait(INTERVAL if tty else PLAIN_INTERVAL):
            drawer.draw(view.lines(read_totals(directory)))

    thread = threading.Thread(target=loop, name="clipcurate-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        drawer.draw(view.lines(read_totals(directory)), final=True)
        if before is None:
            os.environ.pop(ENV_DIR, None)
        else:
            os.environ[ENV_DIR] = before
        shutil.rmtree(directory, ignore_errors=True)


def known_totals(cfg: Any) -> dict[str, tuple[str, int]]:
    """Work known before the run: the number of input files of the ingest stage (for its ETA)."""
    if getattr(cfg, "after", None):
        return {}
    try:
        from clipcurate.ingest.transform import expand_inputs
        return {"ingest": ("files_in", len(expand_inputs(cfg.ingest)))}
    except Exception:  # noqa: BLE001 - a bad input is reported by the pipeline itself, not here
        return {}


def live_run(cfg: Any, stream: TextIO | None = None):
    """:func:`live` for a curation run (cheap no-op when the view is off)."""
    if not enabled(stream or sys.stderr):
        return contextlib.nullcontext()
    return live(known_totals(cfg), stream)
