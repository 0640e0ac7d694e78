"""ClipScorer on real photos: equals a direct open_clip computation, batch/order invariant,
bad input counted; the pure cut functions; the GPU transform spec."""
import io
import json
import os
import random
import struct
import zlib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from clipcurate.scoring import cut as cutlib
from clipcurate.scoring.images import decode_cpu, preprocess_spec
from clipcurate.scoring.model import TINY_MODEL, load_clip
from clipcurate.scoring.scorer import ClipScorer, tokenize
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
IMAGENET = DATA / "imagenet-sample-images-subset"
CLIPSCORE = DATA / "clipscore-example"


def imagenet(n):
    files = sorted(IMAGENET.glob("*.JPEG"))[:n]
    return [f.read_bytes() for f in files], [f"a photo of a {f.stem.split('_', 1)[1].replace('_', ' ')}" for f in files]


@pytest.fixture(scope="module")
def tiny():
    return load_clip(TINY_MODEL, random_init=True, seed=0)


def direct_scores(loaded, images, captions):
    """The reference: open_clip's own preprocess, tokenizer and encoders, fp32, one batch."""
    with torch.no_grad():
        px = torch.stack([loaded.preprocess(Image.open(io.BytesIO(b))) for b in images])
        img = F.normalize(loaded.model.encode_image(px), dim=-1)
        txt = F.normalize(loaded.model.encode_text(loaded.tokenizer(captions)), dim=-1)
    return (img * txt).sum(-1).numpy()


def test_scores_equal_direct_open_clip(tiny):
    images, captions = imagenet(24)
    got = ClipScorer(tiny).score(images, captions).scores
    np.testing.assert_allclose(got, direct_scores(tiny, images, captions), atol=1e-4, rtol=0)
    assert np.ptp(got) > 0.01  # a real spread, not a constant


def test_scores_bit_identical_across_batch_sizes_and_order(tiny):
    images, captions = imagenet(20)
    scorer = ClipScorer(tiny)
    whole = scorer.score(images, captions).scores
    order = list(range(20))
    random.Random(5).shuffle(order)
    shuffled = np.empty(20)
    for start, size in [(0, 1), (1, 7), (8, 12)]:
        idx = order[start:start + size]
        shuffled[idx] = scorer.score([images[i] for i in idx], [captions[i] for i in idx]).scores
    assert np.array_equal(whole, shuffled)


def test_overlapped_decode_gives_the_same_results_as_serial(tiny):
    """Decode of chunk k+1 in the prefetch thread while the model runs chunk k: same scores,
    errors and embeddings, bit for bit, with failures in several chunks and a short last chunk."""
    good, caps = imagenet(19)
    images = list(good)
    for i in (2, 9, 10, 17):  # a broken image in three different chunks of 4
        images[i] = b"not an image" if i != 10 else good[i][: len(good[i]) // 3]
    overlapped = ClipScorer(tiny, chunk_size=4, overlap=True)
    assert overlapped._prefetch is not None
    got = overlapped.score(images, caps, with_embeddings=True)
    ref = ClipScorer(tiny, chunk_size=4, overlap=False).score(images, caps, with_embeddings=True)
    assert [i for i, e in enumerate(got.errors) if e] == [2, 9, 10, 17]
    assert got.errors == ref.errors
    assert np.array_equal(got.scores, ref.scores, equal_nan=True)
    assert np.array_equal(got.image_emb, ref.image_emb) and np.array_equal(got.text_emb, ref.text_emb)
    np.testing.assert_allclose(got.scores[np.isfinite(got.scores)],
                               direct_scores(tiny, [images[i] for i in range(19) if i not in (2, 9, 10, 17)],
                                             [caps[i] for i in range(19) if i not in (2, 9, 10, 17)]),
                               atol=1e-4, rtol=0)
    many = list(overlapped.score_many([(images[:7], caps[:7]), (images[7:], caps[7:])]))
    assert np.array_equal(np.concatenate([m.scores for m in many]), ref.scores, equal_nan=True)


def test_embeddings_are_unit_and_give_the_score(tiny):
    images, captions = imagenet(6)
    res = ClipScorer(tiny).score(images, captions, with_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(res.image_emb, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose((res.image_emb * res.text_emb).sum(1), res.scores, atol=1e-5)


def zero_width_png():
    ihdr = struct.pack(">IIBBBBB", 0, 5, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_bad_images_get_an_error_not_an_exception(tiny):
    good, caps = imagenet(2)
    images = [good[0], b"not an image", b"", None, good[1][: len(good[1]) // 3], zero_width_png(), good[1]]
    res = ClipScorer(tiny).score(images, ["x"] * len(images))
    failed = [i for i, e in enumerate(res.errors) if e]
    assert failed == [1, 2, 3, 4, 5]
    assert np.isnan(res.scores[failed]).all() and np.isfinite(res.scores[[0, 6]]).all()
    assert "empty" in res.errors[2] and "0x" not in res.errors[1]
    again = ClipScorer(tiny).score(images, ["x"] * len(images))
    assert again.errors == res.errors  # deterministic messages


def test_long_captions_truncate_like_the_tokenizer_and_are_counted(tiny):
    long = "an orange cat and a grey cat are lying together on a sofa " * 6
    tokens, truncated = tokenize(tiny.tokenizer, ["short caption", long])
    assert truncated == [False, True]
    assert torch.equal(tokens, tiny.tokenizer(["short caption", long]))
    assert tokens[1, -1].item() == tiny.tokenizer.eot_token_id  # truncation keeps the end token
    images, _ = imagenet(2)
    res = ClipScorer(tiny).score(images, ["short caption", long])
    assert res.truncated == [False, True] and np.isfinite(res.scores).all()


def test_clipscore_example_ranks_the_matching_caption_higher():
    ckpt = os.environ.get("CLIPCURATE_TRAINED_CHECKPOINT")
    if not ckpt or not os.path.isfile(ckpt):
        pytest.skip("needs a trained model: set CLIPCURATE_TRAINED_CHECKPOINT to a checkpoint written by "
                    "`clipcurate train` (no pretrained weights can be downloaded here)")
    loaded = load_clip("", checkpoint=ckpt)
    good = json.loads((CLIPSCORE / "good_captions.json").read_text())
    bad = json.loads((CLIPSCORE / "bad_captions.json").read_text())
    keys = sorted(good)
    images = [(CLIPSCORE / "images" / f"{k}.jpg").read_bytes() for k in keys]
    scorer = ClipScorer(loaded)
    g = scorer.score(images, [good[k] for k in keys]).scores
    b = scorer.score(images, [bad[k] for k in keys]).scores
    assert (g > b).all(), (g, b)


def test_preprocess_spec_reads_the_model_transform(tiny):
    spec = preprocess_spec(tiny.preprocess)
    assert spec.size == 64 and spec.crop == (64, 64) and spec.interpolation == "bicubic"
    assert spec.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))


def test_decode_cpu_matches_preprocess(tiny):
    data = (CLIPSCORE / "images" / "image1.jpg").read_bytes()
    t, err = decode_cpu(data, tiny.preprocess)
    assert err is None and torch.equal(t, tiny.preprocess(Image.open(io.BytesIO(data))))


# -- the cut -------------------------------------------------------------------------------

def test_exact_top_cut_keeps_exactly_k_with_uid_tiebreak():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(0.2, 0.05, 1000), 2)  # many ties
    pairs = [(float(s), f"{i:032x}") for i, s in enumerate(scores)]
    for fraction in (0.3, 0.15, 0.5, 1.0, 0.0004):
        cut = cutlib.exact_top_cut(pairs, fraction)
        kept = [u for s, u in pairs if cutlib.keeps(s, u, cut)]
        expected = sorted(pairs, key=lambda p: (-p[0], p[1]))[:cut["k"]]
        assert cut["k"] == round(fraction * 1000) and sorted(kept) == sorted(u for _, u in expected)
    assert cutlib.exact_top_cut(list(reversed(pairs)), 0.3) == cutlib.exact_top_cut(pairs, 0.3)


def test_cut_edge_cases():
    assert cutlib.top_k_count(10, 0.3) == 3 and cutlib.top_k_count(10, 0.25) == 3
    assert cutlib.top_k_count(0, 0.3) == 0 and cutlib.top_k_count(3, 1.0) == 3
    empty = cutlib.exact_top_cut([], 0.3)
    assert empty["k"] == 0 and not cutlib.keeps(0.9, "a", empty)
    thr = {"mode": "threshold", "value": 0.25}
    assert cutlib.keeps(0.25, "a", thr) and not cutlib.keeps(0.2499, "a", thr)
    approx = cutlib.approximate_cut([0.0, 0.1, 0.2, 0.3, 0.4], 0.5)
    assert approx["value"] == 0.2
