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

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
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
    bodies = [p.read_bytes() for p in PHOTOS] * 3
    pool = ImagePool(cfg)
    try:
        futures = [pool.submit(b) for b in bodies]
        while not any(f.done() for f in futures):  # kill once work is under way
            time.sleep(0.005)
        victim = next(iter(pool._executor._processes))  # a worker pid
        os.kill(victim, signal.SIGKILL)
        got = [f.result(60) for f in futures]
        assert pool._generation >= 1  # the broken pool was rebuilt
        assert victim not in pool._executor._processes
    finally:
        pool.close()
    expected = [process_image(b, cfg) for b in bodies[: len(PHOTOS)]] * 3
    assert got == expected  # nothing lost, same bytes


def test_in_process_mode_and_bad_settings():
    cfg = DownloadConfig(image_processes=0, decode_threads=1)
    pool = ImagePool(cfg)
    try:
        assert pool._executor is None and pool.submit(PHOTOS[0].read_bytes()).result().status == "ok"
    finally:
        pool.close()
    for bad in (dict(image_processes=-2), dict(image_nice=20)):
        try:
            DownloadConfig(**bad)
        except ValueError as e:
            assert str(bad.popitem()[1]) in str(e)
        else:
            raise AssertionError(f"{bad} accepted")
