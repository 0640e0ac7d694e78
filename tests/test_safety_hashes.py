"""Image hash lists on real photos: MD5/SHA-1/SHA-256 of the bytes, PDQ within a Hamming
distance (exact, JPEG-q70 re-encoded and resized copies match; unrelated photos do not), the
multi-index against a linear scan, and the Beam stage (rejects hold the hash, never the image)."""
from __future__ import annotations

import collections
import hashlib
import io
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to
from PIL import Image

from clipcurate.safety.config import SafetyConfig
from clipcurate.safety.hashes import DigestLists, PdqIndex, linear_scan, parse_hash_line
from clipcurate.safety.image_stage import ImageSafety, SafetyImage
from clipcurate.testing.shared_data import SHARED_DATA

pdqhash = pytest.importorskip("pdqhash", reason="pdqhash (extra 'pdq') needs a C++ compiler to build")
from clipcurate.safety.hashes import pdq_hash  # noqa: E402

DATA = SHARED_DATA
PHOTOS = sorted((DATA / "open-images-cc-test-images").glob("*.jpg"))
OTHERS = sorted((DATA / "imagenet-sample-images-subset").rglob("*.JPEG"))[:60]


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def variants(data: bytes) -> dict[str, bytes]:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    return {"exact": data, "jpeg_q70": _jpeg(img, 70),
            "half": _jpeg(img.resize((w // 2, h // 2), Image.LANCZOS), 90),
            "thumb_160": _jpeg(img.resize((160, max(1, round(160 * h / w))), Image.BILINEAR), 85),
            "png": (lambda b: (img.save(b, "PNG"), b.getvalue())[1])(io.BytesIO())}


@pytest.fixture(scope="module")
def listed():
    assert len(PHOTOS) >= 18 and len(OTHERS) >= 40
    return [p.read_bytes() for p in PHOTOS[:8]]


def test_digest_lists_match_exact_bytes_only(listed):
    lines_a = [hashlib.md5(listed[0]).hexdigest(), "sha1:" + hashlib.sha1(listed[1]).hexdigest()]
    lines_b = [hashlib.sha256(listed[2]).hexdigest().upper() + ",some-case-id", hashlib.md5(listed[0]).hexdigest()]
    lists = DigestLists([("ncmec", lines_a), ("org", lines_b)])
    assert len(lists) == 4
    assert lists.match(listed[0]) == ("ncmec", "md5:" + hashlib.md5(listed[0]).hexdigest())  # first list wins
    assert lists.match(listed[1])[0] == "ncmec" and lists.match(listed[1])[1].startswith("sha1:")
    assert lists.match(listed[2]) == ("org", "sha256:" + hashlib.sha256(listed[2]).hexdigest())
    for data in listed[3:] + [variants(listed[0])["jpeg_q70"], listed[0] + b"\0"]:
        assert lists.match(data) is None
    for bad in ("xyz", "a" * 33, "md5:" + "0" * 40, "sha256:" + "g" * 64):
        with pytest.raises(ValueError, match="entry 1"):
            DigestLists([("bad", [bad])])
    assert parse_hash_line("SHA-256:" + "00" * 32, "x") == ("sha256", bytes(32))  # trailing NULs kept apart
    nul = DigestLists([("z", ["00" * 31 + "01", "00" * 32])])
    assert nul.tables["sha256"][0].shape == (2,)


def _distance(a: bytes, b: bytes) -> int:
    return int(np.unpackbits(np.frombuffer(a, np.uint8) ^ np.frombuffer(b, np.uint8)).sum())


def test_pdq_matches_reencoded_and_resized_copies_not_unrelated_photos(listed):
    hashes = [pdq_hash(d) for d in listed]
    assert all(q >= 50 for _, q in hashes)  # real photos: PDQ quality is high
    index = PdqIndex.from_lists([("org", [h.hex() for h, _ in hashes[:4]]),
                                 ("ncmec", ["pdq:" + h.hex() + ",100" for h, _ in hashes[4:]])], distance=31)
    worst = collections.Counter()
    for i, data in enumerate(listed):
        for kind, v in variants(data).items():
            h, _ = pdq_hash(v)
            m = index.match(h)
            assert m is not None and m.hash_hex == hashes[i][0].hex(), (i, kind)
            assert m.list_name == ("org" if i < 4 else "ncmec")
            assert m.distance == _distance(h, hashes[i][0]) <= 31
            worst[kind] = max(worst[kind], m.distance)
    # on all 18 photos: q70 moves 0-2 bits, half size 2-18, a 160 px thumbnail 8-24 (docs/safety.md)
    assert worst["exact"] == worst["png"] == 0 and worst["jpeg_q70"] <= 4 and worst["half"] <= 20
    # unrelated photos (the other Open Images photos and ImageNet samples) are far from every entry
    others = [p.read_bytes() for p in PHOTOS[8:]] + [p.read_bytes() for p in OTHERS]
    nearest = []
    for data in others:
        h = pdq_hash(data)
        assert h is not None
        assert index.match(h[0]) is None
        nearest.append(min(_distance(h[0], e) for e, _ in hashes))
    assert min(nearest) > 31 and np.median(nearest) > 90
    assert pdq_hash(b"not an image") is None


def test_multi_index_equals_linear_scan_with_random_entries(listed):
    rng = np.random.default_rng(7)
    real = np.frombuffer(b"".join(pdq_hash(d)[0] for d in listed), np.uint8).reshape(-1, 32)
    noise = rng.integers(0, 256, (20000, 32), dtype=np.uint8)
    # near copies of real hashes at distances 0..40 (some inside, some outside 31)
    near = []
    for k in range(0, 41, 4):
        bits = np.unpackbits(real[k % len(real)])
        bits[rng.choice(256, k, replace=False)] ^= 1
        near.append(np.packbits(bits))
    entries = np.vstack([noise, np.array(near)])
    for bands, distance in ((16, 31), (8, 31), (32, 40), (16, 10)):
        index = PdqIndex(entries, np.zeros(len(entries), np.int32), ["l"], distance, bands)
        for q in list(real) + list(rng.integers(0, 256, (30, 32), dtype=np.uint8)):
            hits = linear_scan(index.words, q.tobytes(), distance)
            m = index.match(q.tobytes())
            if len(hits):
                d = np.bitwise_count(index.words[hits] ^ np.frombuffer(q.tobytes(), ">u8").astype(np.uint64)).sum(1)
                assert m is not None and m.distance == d.min(), (bands, distance)
                assert set(hits) <= set(index.candidates(q.tobytes()).tolist())
            else:
                assert m is None
    with pytest.raises(ValueError, match="not a PDQ hash"):
        PdqIndex.from_lists([("x", ["abc"])], 31)
    assert PdqIndex.from_lists([("empty", [])], 31).match(real[0].tobytes()) is None


def _records(datas):
    return [{"uid": f"{i:032x}", "url": f"http://example.org/{i}.jpg", "caption": "c", "image": d,
             "sha256": hashlib.sha256(d).hexdigest()} for i, d in enumerate(datas)]


def test_image_stage_drops_listed_images_and_keeps_no_bytes(tmp_path, listed):
    md5 = tmp_path / "md5.txt"
    md5.write_text(hashlib.md5(listed[0]).hexdigest() + "\n")
    pdq = tmp_path / "pdq.txt"
    pdq.write_text("\n".join(pdq_hash(d)[0].hex() for d in listed[1:3]) + "\n")
    cfg = SafetyConfig(hash_lists=[f"md5s={md5}"], pdq_lists=[str(pdq)])
    datas = [listed[0], variants(listed[1])["jpeg_q70"], variants(listed[2])["half"]] + listed[3:]
    recs = _records(datas)
    core = ImageSafety(cfg)
    out = core.decide_batch(recs)
    assert [s for s, _ in out] == ["blocklisted"] * 3 + ["ok"] * (len(datas) - 3)
    assert out[0][1]["safety_list"] == "md5s" and out[0][1]["safety_match"] == "md5:" + hashlib.md5(listed[0]).hexdigest()
    assert out[1][1]["safety_list"] == "pdq.txt" and out[1][1]["safety_match"] == "pdq:" + pdq_hash(listed[1])[0].hex()
    assert all(r["image"] is None for s, r in out if s != "ok") and all(r["image"] for s, r in out if s == "ok")
    st = core.stats()
    assert [i["file"] for i in st["lists"]] == ["md5.txt", "pdq.txt"] and st["lists"][1]["entries"] == 2
    assert st["lists"][1]["sha256"] == hashlib.sha256(pdq.read_bytes()).hexdigest()
    with beam.Pipeline(runner="FnApiRunner") as p:
        res = p | beam.Create(recs) | SafetyImage(cfg, keep_rejects=True)
        assert_that(res["counts"] | beam.CombinePerKey(sum),
                    equal_to([(("safety_image", "in"), len(recs)), (("safety_image", "kept"), len(recs) - 3),
                              (("safety_image", "dropped:blocklisted"), 3)]), label="counts")
        assert_that(res["rejects"] | beam.Map(lambda r: (r["uid"], r["image"], r["safety_list"])),
                    equal_to([(recs[0]["uid"], None, "md5s"), (recs[1]["uid"], None, "pdq.txt"),
                              (recs[2]["uid"], None, "pdq.txt")]), label="rejects")
    assert collections.Counter(s for s, _ in out)["ok"] == len(recs) - 3


def test_low_quality_and_undecodable_images(tmp_path, listed):
    flat = io.BytesIO()
    Image.new("RGB", (300, 200), (120, 130, 140)).save(flat, "PNG")
    flat = flat.getvalue()
    h, quality = pdq_hash(flat)
    assert quality < 50  # a flat image: PDQ says its hash is unreliable
    lst = tmp_path / "pdq.txt"
    lst.write_text(h.hex() + "\n")
    recs = _records([flat, b"not an image at all", listed[0]]) + [{"uid": "f" * 32, "url": "http://x/none"}]
    loose = ImageSafety(SafetyConfig(pdq_lists=[str(lst)])).decide_batch(recs)
    assert [s for s, _ in loose] == ["blocklisted", "ok", "ok", "ok"]
    strict = ImageSafety(SafetyConfig(pdq_lists=[str(lst)], pdq_min_quality=50)).decide_batch(recs)
    assert [s for s, _ in strict] == ["ok", "ok", "ok", "ok"]
    # with faces on, bytes that do not decode are a counted drop, not a crash
    faces = ImageSafety(SafetyConfig(faces="blur", face_detector="haar")).decide_batch(recs)
    assert [s for s, _ in faces] == ["ok", "decode_error", "ok", "ok"]
    assert faces[1][1]["image"] is None and "safety_image" in faces[1][1]["error"]
