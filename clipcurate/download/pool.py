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
the OOM killer) breaks a ``ProcessPoolExecutor``; the pool is then rebuilt and the
affected images are tried once more; an image that kills a worker twice is a
``decode_error``.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import sys
import threading
import types
from concurrent.futures.process import BrokenProcessPool

from clipcurate.download.config import DownloadConfig
from clipcurate.download.image import ImageResult, process_image

_PRELOAD = ["clipcurate.download.image"]


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


def _warm() -> None:
    """No-op task: makes the executor start a worker process."""


class ImagePool:
    """``submit(body) -> concurrent Future of ImageResult`` for ``process_image(body, cfg)``.

    ``cfg.image_processes`` worker processes (-1: one per core; 0: ``cfg.decode_threads``
    threads of this process).  ``submit`` never blocks: jobs are handed to the workers by
    feeder threads, so the caller (the fetch event loop) never waits on a pipe, a lock or
    a process start.  Workers start in a background thread at construction (a worker
    imports the parent's ``__main__`` module, as multiprocessing does, which can take
    seconds), so the first fetches overlap with it.  ``close()`` stops them.
    """

    def __init__(self, cfg: DownloadConfig):
        self.cfg = cfg
        n = cfg.image_processes
        self.processes = default_processes() if n < 0 else n
        self.closed = False
        self._lock = threading.Lock()
        self._generation = 0
        self._executor: concurrent.futures.Executor | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._start, name="dl-image-start", daemon=True).start()
        feeders = cfg.decode_threads if self.processes == 0 else 2 * self.processes + 2
        self._feeder = concurrent.futures.ThreadPoolExecutor(feeders, thread_name_prefix="dl-image")

    def _start(self) -> None:
        try:
            self._executor = self._make()
        finally:
            self._ready.set()

    def _make(self) -> concurrent.futures.Executor | None:
        if self.processes == 0:
            return None
        ex = concurrent.futures.ProcessPoolExecutor(
            self.processes, mp_context=_context(), initializer=_worker_init,
            initargs=(self.cfg.image_nice, _guard_installed()))
        with _bare_main():  # each submit starts one worker now
            warm = [ex.submit(_warm) for _ in range(self.processes)]
        concurrent.futures.wait(warm)
        return ex

    def submit(self, body: bytes) -> concurrent.futures.Future:
        """Process ``body`` off this thread; the Future yields an ImageResult (bad images
        give a drop status, never an exception)."""
        return self._feeder.submit(self.run, body)

    def run(self, body: bytes) -> ImageResult:
        """``process_image(body, cfg)`` in a worker (blocking); a worker crash is retried once."""
        if self.processes == 0:
            return process_image(body, self.cfg)
        self._ready.wait()
        for _ in range(2):
            with self._lock:
                executor, generation = self._executor, self._generation
            try:
                return executor.submit(process_image, body, self.cfg).result()
            except BrokenProcessPool:
                self._rebuild(generation)
            except concurrent.futures.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - e.g. MemoryError in a worker: a counted drop
                return ImageResult("decode_error", f"image worker: {type(e).__name__}: {e}")
        return ImageResult("decode_error", "image worker process died twice on this image")

    def _rebuild(self, generation: int) -> None:
        with self._lock:
            if self.closed or self._generation != generation:  # closed, or already rebuilt
                return
            old, self._executor = self._executor, self._make()
            self._generation += 1
        old.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the feeders and the workers (each finishes the image it is on, then exits)."""
        with self._lock:
            self.closed = True
        self._feeder.shutdown(wait=False, cancel_futures=True)
        self._ready.wait()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
