"""process_image on real photos (../shared/data) and on generated edge cases."""
import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipcurate.download.config import DownloadConfig
from clipcurate.download.image import process_image, sniff
from clipcurate.testing.hostile_web import bomb_png, generated_images
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
PHOTOS = sorted((DATA / "open-images-cc-test-images").glob("*.jpg"))
GEN = generated_images()
BASIC = DownloadConfig(min_image_size=200, max_aspect_ratio=3)


def _encode(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def test_sniff_recognises_formats_and_refuses_non_images():
    im = Image.open(PHOTOS[0]).convert("RGB")
    for fmt in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"):
        assert sniff(_encode(im, fmt)) == fmt
    assert sniff(b"<!doctype html><html></html>") is None
    assert sniff(np.random.default_rng(0).bytes(1000)) is None


@pytest.mark.parametrize("mode", ["keep_ratio", "keep_ratio_largest", "center_crop", "border", "no"])
def test_resize_modes_on_real_photos(mode):
    cfg = DownloadConfig(resize_mode=mode, image_size=224)
    for p in PHOTOS[:6]:
        w0, h0 = Image.open(p).size
        r = process_image(p.read_bytes(), cfg)
        assert r.status == "ok", r.error
        assert (r.original_width, r.original_height) == (w0, h0)
        out = Image.open(io.BytesIO(r.image))
        assert out.format == "JPEG" and out.mode == "RGB" and out.size == (r.width, r.height)
        if mode == "keep_ratio":
            assert min(out.size) == 224 and abs(out.width / out.height - w0 / h0) < 0.01
        elif mode == "keep_ratio_largest":
            assert max(out.size) == 224
        elif mode in ("center_crop", "border"):
            assert out.size == (224, 224)
        else:
            assert out.size == (w0, h0)


def test_output_is_deterministic_and_hash_matches():
    data = PHOTOS[1].read_bytes()
    a, b = process_image(data, BASIC), process_image(data, BASIC)
    assert a.image == b.image and a.sha256 == b.sha256
    import hashlib
    assert hashlib.sha256(a.image).hexdigest() == a.sha256


def test_keep_original_stores_fetched_bytes():
    data = PHOTOS[2].read_bytes()
    r = process_image(data, DownloadConfig(keep_original=True))
    assert r.status == "ok" and r.image == data and r.image_format == "jpg"


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_encode_formats(fmt):
    r = process_image(PHOTOS[3].read_bytes(), DownloadConfig(encode_format=fmt, encode_quality=9 if fmt == "png" else 80))
    assert r.status == "ok" and Image.open(io.BytesIO(r.image)).format == fmt.upper()


def test_bomb_refused_from_header_fast():
    t = time.perf_counter()
    r = process_image(bomb_png(), BASIC)
    assert r.status == "bomb" and time.perf_counter() - t < 1.0
    # a real (small) image above a low pixel limit is also a bomb, before decoding
    assert process_image(PHOTOS[0].read_bytes(), DownloadConfig(max_pixels=10_000)).status == "bomb"


def test_bad_bytes():
    data = PHOTOS[4].read_bytes()
    assert process_image(data[: len(data) // 2], BASIC).status == "decode_error"
    assert process_image(b"\xff\xd8\xff" + b"\x00" * 100, BASIC).status == "decode_error"
    assert process_image(b"<html>hi</html>", BASIC).status == "not_image"
    assert process_image(b"", BASIC).status == "not_image"


def test_datacomp_basic_size_and_aspect():
    assert process_image(GEN["tiny.png"], BASIC).status == "too_small"
    assert process_image(GEN["wide.png"], BASIC).status == "bad_aspect"
    assert process_image(GEN["wide.png"], DownloadConfig()).status == "ok"  # no limits by default
    assert all(process_image(p.read_bytes(), BASIC).status == "ok" for p in PHOTOS)


def test_exif_orientation_applied():
    r = process_image(GEN["rotated.jpg"], DownloadConfig(resize_mode="no", encode_quality=100))
    assert (r.original_width, r.original_height) == (400, 300) == (r.width, r.height)
    ref = Image.open(io.BytesIO(GEN["rotated.jpg"])).convert("RGB").transpose(Image.Transpose.ROTATE_270)
    got = np.asarray(Image.open(io.BytesIO(r.image)), dtype=float)
    assert np.abs(got - np.asarray(ref, dtype=float)).mean() < 3


def test_mode_conversions():
    cfg = DownloadConfig(resize_mode="no", encode_format="png")
    decoded = {k: Image.open(io.BytesIO(process_image(GEN[k], cfg).image)) for k in
               ("cmyk.jpg", "palette.png", "gray16.png", "rgba.png", "anim.gif")}
    assert all(im.mode == "RGB" for im in decoded.values())
    grad = np.asarray(Image.linear_gradient("L").resize((300, 400)), dtype=float)
    gray = np.asarray(decoded["gray16.png"], dtype=float)[..., 0]
    assert np.abs(gray - grad).mean() < 2  # 16-bit scaled to 8-bit, not clipped
    src = np.asarray(Image.open(io.BytesIO(GEN["rgba.png"])).convert("RGB"), dtype=float)
    assert np.abs(np.asarray(decoded["rgba.png"], dtype=float) - (src * 128 / 255 + 255 * 127 / 255)).max() <= 2
    first = Image.open(io.BytesIO(GEN["anim.gif"])).convert("RGB").getpixel((5, 5))
    assert decoded["anim.gif"].getpixel((5, 5)) == first
