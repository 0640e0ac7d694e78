"""Image work off the network process: ``ImagePool(cfg).submit(body) -> Future[ImageResult]``.

Decode / resize / encode (:func:`~.image.process_image`) is CPU work.  Run on threads of
the process that also runs the fetch event loop, it competes with that loop for the GIL
and the cores, and the loop then fires deadline timers late.  ``ImagePool`` runs it in
worker processes instead (``cfg.image_processes``; -1 = one per core available to this
process, 0 = threads of this process, as before), started with ``forkserver`` (spawn where
there is none) so that no thread state of the parent (Beam, gRPC, the event loop) is
forked.  Workers get ``cfg.image_nice`` added to their niceness so that, when the cores
are saturated, the network loop is scheduled first, and inherit the test network guard
when the parent has it installed; they only ever receive bytes, never open sockets.

``process_image`` is a pure function of (bytes, config), so a worker process returns the
same bytes as the calling process (tested).  A worker that dies (a crash inside a codec,
the OOM killer) is replaced and the image it was on is tried once more; an image that
kills a worker twice is a ``decode_error``.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import multiprocessing
import os
import pickle
import queue
import sys
import threading
import types

from clipcurate.download.config import DownloadConfig
from clipcurate.download.image import ImageResult, process_image

_PRELOAD = ["clipcurate.download.image"]
MAX_BATCH = 16  # jobs handed to a worker at once (only those already queued)
MAX_BATCH_BYTES = 16 << 20
log = logging.getLogger(__name__)


def default_processes() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _worker_init(nice: int, guard: bool) -> None:
    """Runs once in each worker process: lower its priority, install the network guard."""
    if nice > 0:
        try:
            os.nice(nice)
        except OSError:
            pass
    if guard:
        from clipcurate.testing.netguard import GUARD
        GUARD.install()


def _context():
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)  # workers fork with Pillow + numpy imported
        return ctx
    return multiprocessing.get_context("spawn")


def _guard_installed() -> bool:
    mod = sys.modules.get("clipcurate.testing.netguard")
    return bool(mod is not None and mod.GUARD.installed)


@contextlib.contextmanager
def _bare_main():
    """Hide the parent's ``__main__`` while worker processes are started.

    multiprocessing makes every spawned/forkserver child import the parent's main module
    (a script, or Beam's sdk_worker_main): seconds of imports (Beam, torch, ...) per
    worker that image work never needs.  Workers started inside this block get a bare
    ``__main__`` instead.  The swap lasts only for the synchronous ``Process.start()``
    calls."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _worker_main(conn, cfg: DownloadConfig, nice: int, guard: bool) -> None:
    """An image worker process: a pickled list of bodies in, a pickled list of ImageResults
    out, until the pipe closes."""
    _worker_init(nice, guard)
    while True:
        try:
            bodies = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        results = []
        for body in bodies:
            try:
                results.append(process_image(body, cfg))
            except Exception as e:  # noqa: BLE001 - e.g. MemoryError: a counted drop, not a dead worker
                results.append(ImageResult("decode_error", f"image worker: {type(e).__name__}: {e}"))
        conn.send_bytes(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))


class ImagePool:
    """``submit(body) -> concurrent Future of ImageResult`` for ``process_image(body, cfg)``.

    ``cfg.image_processes`` worker processes (-1: one per core; 0: ``cfg.decode_threads``
    threads of this process).  Each worker process has one driver thread here that takes
    jobs from a shared queue (all those already waiting, up to ``MAX_BATCH``), writes their
    bodies to the worker's pipe as one message and reads the results back (blocking I/O,
    the GIL released); ``submit`` only enqueues, so the caller (the fetch event loop) never
    waits on a pipe, a lock or a process start.  The driver threads start their workers in
    the background at construction, so the first fetches overlap with it.  ``close()``
    stops them.
    """

    _start_lock = threading.Lock()  # __main__ is swapped while a worker starts

    def __init__(self, cfg: DownloadConfig):
        self.cfg = cfg
        n = cfg.image_processes
        self.processes = default_processes() if n < 0 else n
        self.closed = False
        self.restarts = 0  # workers replaced after dying
        self._no_processes = False  # set when a worker process cannot be started
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._pids: dict[int, int] = {}  # driver index -> pid of its live worker
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None
        self._drivers: list[threading.Thread] = []
        if self.processes == 0:
            self._threads = concurrent.futures.ThreadPoolExecutor(cfg.decode_threads, thread_name_prefix="dl-image")
            return
        self._ctx = _context()
        self._guard = _guard_installed()
        self._proc: list = [None] * self.processes  # per driver: its worker process and pipe end
        self._conn: list = [None] * self.processes
        for i in range(self.processes):
            t = threading.Thread(target=self._drive, args=(i,), name=f"dl-image-{i}", daemon=True)
            t.start()
            self._drivers.append(t)

    def worker_pids(self) -> list[int]:
        """Process ids of the live image workers."""
        return sorted(self._pids.values())

    def submit(self, body: bytes) -> concurrent.futures.Future:
        """Process ``body`` off this thread; the Future yields an ImageResult (bad images
        give a drop status, never an exception)."""
        if self.closed:
            raise RuntimeError("ImagePool is closed")
        if self._threads is not None:
            return self._threads.submit(process_image, body, self.cfg)
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((body, fut))
        return fut

    def run(self, body: bytes) -> ImageResult:
        """``process_image(body, cfg)`` off this thread, blocking until done."""
        return self.submit(body).result()

    def _spawn(self, i: int):
        """(process, pipe end) of a new worker for driver ``i``, or (None, None) if no process
        can be started here (the driver then works in its own thread)."""
        try:
            parent, child = self._ctx.Pipe()
            proc = self._ctx.Process(target=_worker_main, args=(child, self.cfg, self.cfg.image_nice, self._guard),
                                     name=f"clipcurate-image-{i}", daemon=True)
            with self._start_lock, _bare_main():
                proc.start()
        except Exception as e:  # noqa: BLE001 - e.g. no /dev/shm, process limit
            log.warning("clipcurate download: cannot start an image worker process (%s: %s); "
                        "processing images in threads from now on", type(e).__name__, e)
            self._no_processes = True
            return None, None
        child.close()
        self._pids[i] = proc.pid
        return proc, parent

    def _take(self) -> tuple[list, bool]:
        """The next jobs for a worker: block for one, then add those already queued (up to
        ``MAX_BATCH`` jobs and ``MAX_BATCH_BYTES``); and whether a stop sentinel was seen."""
        first = self._jobs.get()
        if first is None:
            return [], True
        jobs, size = [first], len(first[0])
        while len(jobs) < MAX_BATCH and size < MAX_BATCH_BYTES:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            size += len(job[0])
        return jobs, False

    def _drive(self, i: int) -> None:
        """Driver thread ``i``: hand jobs to its worker, several at a time when they queue up
        (one pipe round trip, and one wait for this process's GIL, per batch instead of per
        image: the worker does not sit idle while the fetch loop holds the GIL)."""
        self._proc[i], self._conn[i] = self._spawn(i)
        try:
            while True:
                jobs, stop = self._take()
                jobs = [(body, fut) for body, fut in jobs if fut.set_running_or_notify_cancel()]
                if jobs:
                    try:
                        results = self._on_worker(i, [body for body, _ in jobs])
                        if results is None:  # the worker died: one more try each, one at a time
                            results = [self._retry_one(i, body) for body, _ in jobs]
                    except Exception as e:  # noqa: BLE001 - e.g. MemoryError pickling: never leave a job open
                        results = [ImageResult("decode_error", f"image worker: {type(e).__name__}: {e}")
                                   for _ in jobs]
                    for (_, fut), res in zip(jobs, results):
                        fut.set_result(res)
                if stop:
                    return
        finally:
            self._pids.pop(i, None)
            if self._conn[i] is not None:
                self._conn[i].close()  # the worker reads EOF and exits
                self._proc[i].join(5)

    def _on_worker(self, i: int, bodies: list[bytes]) -> list[ImageResult] | None:
        """Results for ``bodies`` from worker ``i`` (started if needed), None if it died on them;
        in this thread if no worker process can be started here."""
        if self._proc[i] is None and not self._no_processes:
            self._proc[i], self._conn[i] = self._spawn(i)
            self.restarts += self._proc[i] is not None
        if self._proc[i] is None:
            return [process_image(b, self.cfg) for b in bodies]
        try:
            self._conn[i].send_bytes(pickle.dumps(bodies, protocol=pickle.HIGHEST_PROTOCOL))
            return pickle.loads(self._conn[i].recv_bytes())
        except (EOFError, OSError):  # the worker died (codec crash, OOM killer, kill)
            self._conn[i].close()
            self._proc[i].join(5)
            self._pids.pop(i, None)
            self._proc[i] = self._conn[i] = None
            return None

    def _retry_one(self, i: int, body: bytes) -> ImageResult:
        """After a worker died on a batch: this image alone on a fresh worker; if that one
        dies too, this image is what kills workers (tried twice): a ``decode_error``."""
        res = self._on_worker(i, [body])
        return res[0] if res else ImageResult("decode_error", "image worker process died twice on this image")

    def close(self) -> None:
        """Stop the workers (each finishes the image it is on, then exits); queued jobs are
        cancelled."""
        if self.closed:
            return
        self.closed = True
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            return
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job[1].cancel()
        for _ in self._drivers:
            self._jobs.put(None)
        for t in self._drivers:
            t.join(30)
