"""ImagePool: image work in worker processes gives the same bytes as in-process work,
survives a killed worker, and the deadline holds while the pool is busy."""
import os
import signal
import time
from pathlib import Path

from clipcurate.download.config import DownloadConfig
from clipcurate.download.image import process_image
from clipcurate.download.pool import ImagePool
from clipcurate.testing.hostile_web import bomb_png, generated_images
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
PHOTOS = sorted((DATA / "open-images-cc-test-images").glob("*.jpg"))


def _bodies():
    gen = generated_images()
    return [p.read_bytes() for p in PHOTOS] + list(gen.values()) + [bomb_png(), b"<html>", PHOTOS[0].read_bytes()[:5000]]


def test_worker_processes_give_identical_bytes_to_in_process():
    bodies = _bodies()
    for cfg in (DownloadConfig(image_processes=2), DownloadConfig(image_processes=2, resize_mode="center_crop",
                                                                   image_size=128, encode_format="webp")):
        local = [process_image(b, cfg) for b in bodies]
        pool = ImagePool(cfg)
        try:
            remote = [f.result(30) for f in [pool.submit(b) for b in bodies]]
        finally:
            pool.close()
        assert [r.status for r in remote] == [r.status for r in local]
        assert {r.status for r in local} >= {"ok", "bomb", "not_image", "decode_error"}
        assert remote == local  # every field, image bytes included


def test_a_killed_worker_is_replaced_and_its_images_retried():
    cfg = DownloadConfig(image_processes=2, image_size=768, resize_mode="border")
    bodies = [p.read_bytes() for p in PHOTOS] * 12  # plenty still queued when the kill lands
    pool = ImagePool(cfg)
    try:
        futures = [pool.submit(b) for b in bodies]
        while not any(f.done() for f in futures):  # kill once work is under way
            time.sleep(0.005)
        victim = pool.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        got = [f.result(60) for f in futures]
        assert pool.restarts >= 1  # the dead worker was replaced
        assert victim not in pool.worker_pids() and len(pool.worker_pids()) == 2
    finally:
        pool.close()
    expected = [process_image(b, cfg) for b in bodies[: len(PHOTOS)]] * 12
    assert got == expected  # nothing lost, same bytes


def test_in_process_mode_and_bad_settings():
    cfg = DownloadConfig(image_processes=0, decode_threads=1)
    pool = ImagePool(cfg)
    try:
        assert not pool.worker_pids() and pool.submit(PHOTOS[0].read_bytes()).result().status == "ok"
    finally:
        pool.close()
    for bad in (dict(image_processes=-2), dict(image_nice=20)):
        try:
            DownloadConfig(**bad)
        except ValueError as e:
            assert str(bad.popitem()[1]) in str(e)
        else:
            raise AssertionError(f"{bad} accepted")


def test_no_worker_processes_possible_falls_back_to_threads(monkeypatch):
    """Where no process can be started (process limit, no /dev/shm ...), images are still
    processed, in the driver threads, with the same bytes; nothing hangs."""
    import multiprocessing

    import clipcurate.download.pool as pool_mod

    class NoProcesses:
        Pipe = staticmethod(multiprocessing.Pipe)

        def Process(self, *a, **k):  # noqa: N802 - multiprocessing's spelling
            raise OSError("process limit reached")

    monkeypatch.setattr(pool_mod, "_context", lambda: NoProcesses())
    cfg = DownloadConfig(image_processes=2)
    bodies = _bodies()
    pool = ImagePool(cfg)
    try:
        got = [f.result(30) for f in [pool.submit(b) for b in bodies]]
        assert not pool.worker_pids() and pool.restarts == 0
    finally:
        pool.close()
    assert got == [process_image(b, cfg) for b in bodies]
    try:
        pool.submit(bodies[0])
    except RuntimeError as e:
        assert "closed" in str(e)
    else:
        raise AssertionError("submit after close accepted")
