"""Faces and NSFW on the real Open Images photos: detector recall against hand-counted faces,
boxes as DataComp's normalised ``face_bboxes``, blurring in the stored bytes, drop mode, and
the NSFW score column (no unsafe image is added anywhere: the score is checked on safe photos)."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipcurate.safety.config import SafetyConfig
from clipcurate.safety.faces import HaarFaces, blur_boxes, merge_boxes
from clipcurate.safety.image_stage import ImageSafety
from clipcurate.testing.shared_data import SHARED_DATA

pytest.importorskip("nudenet")
pytest.importorskip("cv2")

PHOTOS = SHARED_DATA / "open-images-cc-test-images"
# Faces counted by hand (a face with eyes or a profile visible, >= ~15 px), docs/safety.md
HAND = {"000adef7197e3118": 4, "001ad258e358b14a": 3, "005fd4c13ac224f4": 2, "006adbf1ca23aa4d": 2,
        "006d7b4705c80d66": 1, "0074216764592579": 5, "008e55802c9e2f90": 1, "01044f592ea5025c": 1}


@pytest.fixture(scope="module")
def photos():
    paths = sorted(PHOTOS.glob("*.jpg"))
    assert len(paths) == 18
    return {p.stem: p.read_bytes() for p in paths}


def _recs(photos):
    return [{"uid": f"{i:032x}", "url": f"http://x/{k}.jpg", "caption": "c", "image": d, "image_format": "jpg",
             "width": Image.open(io.BytesIO(d)).width, "height": Image.open(io.BytesIO(d)).height,
             "sha256": hashlib.sha256(d).hexdigest()} for i, (k, d) in enumerate(sorted(photos.items()))]


@pytest.mark.parametrize("detector,min_found,max_false", [("nudenet", 12, 0), ("haar", 7, 6)])
def test_face_recall_against_hand_counts(photos, detector, min_found, max_false):
    core = ImageSafety(SafetyConfig(faces="detect", face_detector=detector))
    found = false = 0
    for rec in _recs(photos):
        status, out = core.decide(rec)
        assert status == "ok" and out["image"] == rec["image"] and out["faces_blurred"] is False
        boxes = out["face_bboxes"]
        assert all(0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1 for x1, y1, x2, y2 in boxes)
        stem = rec["url"].rsplit("/", 1)[1][:-4]
        hand = HAND.get(stem, 0)
        found += min(len(boxes), hand)
        false += max(0, len(boxes) - hand)
    assert sum(HAND.values()) == 19
    assert found >= min_found and false <= max_false, (detector, found, false)
    assert core.stats()["models"][0]["sha256"]


def test_blur_changes_only_the_face_boxes(photos):
    core = ImageSafety(SafetyConfig(faces="blur"))
    rec = next(r for r in _recs(photos) if r["url"].endswith("0074216764592579.jpg"))
    status, out = core.decide(rec)
    assert status == "ok" and out["faces_blurred"] is True and len(out["face_bboxes"]) >= 4
    assert out["sha256"] == hashlib.sha256(out["image"]).hexdigest() != rec["sha256"]
    before = np.asarray(Image.open(io.BytesIO(rec["image"])).convert("L"), np.float32)
    after = np.asarray(Image.open(io.BytesIO(out["image"])).convert("L"), np.float32)
    assert after.shape == before.shape == (out["height"], out["width"])
    h, w = before.shape
    inside = np.zeros_like(before, bool)
    for x1, y1, x2, y2 in out["face_bboxes"]:
        inside[round(y1 * h):round(y2 * h), round(x1 * w):round(x2 * w)] = True
    diff = np.abs(after - before)
    assert diff[inside].mean() > 8 * diff[~inside].mean()  # faces changed, the rest only by re-encoding
    # a blurred face has lost its fine detail: Laplacian energy inside the boxes drops sharply
    def lap(a):
        return np.abs(a[1:-1, 1:-1] * 4 - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:])
    assert lap(after)[inside[1:-1, 1:-1]].mean() < 0.3 * lap(before)[inside[1:-1, 1:-1]].mean()
    # running again on the blurred image is deterministic for the same input
    assert core.decide(rec)[1]["image"] == out["image"]


def test_drop_mode_and_no_face_photos_untouched(photos):
    core = ImageSafety(SafetyConfig(faces="drop"))
    out = core.decide_batch(_recs(photos))
    dropped = [r for s, r in out if s == "has_face"]
    assert {r["url"].rsplit("/", 1)[1][:-4] for r in dropped} <= set(HAND)
    assert len(dropped) >= 5 and all(r["image"] is None and r["face_bboxes"] for r in dropped)
    kept = [r for s, r in out if s == "ok"]
    assert all(r["face_bboxes"] == [] and r["faces_blurred"] is False for r in kept)


def test_nsfw_score_column_on_safe_photos(photos):
    core = ImageSafety(SafetyConfig(nsfw=True))
    out = core.decide_batch(_recs(photos))
    scores = [r["nsfw_score"] for s, r in out]
    assert all(s == "ok" for s, _ in out) and all(0.0 <= x <= 1.0 for x in scores)
    assert sum(x == 0.0 for x in scores) >= 15  # safe photos: nothing exposed detected on most
    assert max(scores) < 0.6
    thr = ImageSafety(SafetyConfig(nsfw_threshold=0.4)).decide_batch(_recs(photos))
    assert [s for s, _ in thr].count("nsfw") == sum(x >= 0.4 for x in scores)
    assert all(r["image"] is None for s, r in thr if s == "nsfw")
    ident = core.stats()["models"][0]
    assert ident["file"] == "320n.onnx" and len(ident["sha256"]) == 64 and ident["license"] == "AGPL-3.0"


def test_merge_boxes_and_blur_helpers():
    assert merge_boxes([(0, 0, 100, 100), (10, 10, 60, 60), (200, 200, 220, 220), (0, 0, 0, 5)]) == [
        (0, 0, 100, 100), (200, 200, 220, 220)]
    img = Image.new("RGB", (64, 64), "white")
    img.paste((0, 0, 0), (16, 16, 48, 48))
    out = blur_boxes(img, [(8, 8, 40, 40)], 0.5)
    assert out.getpixel((60, 60)) == (255, 255, 255) and out.getpixel((8, 8)) != (255, 255, 255)
    assert HaarFaces().boxes(np.asarray(img)) == []
    with pytest.raises(ValueError, match="face_detector"):
        SafetyConfig(face_detector="retinaface")
