"""The CUDA paths (run on a GPU machine; skipped without CUDA): nvjpeg decode against the
exact Pillow path, fp32 on the GPU against the CPU, batch invariance, fallbacks."""
import os
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

from clipcurate.scoring.model import TINY_MODEL, load_clip  # noqa: E402
from clipcurate.scoring.scorer import ClipScorer  # noqa: E402
from clipcurate.testing.shared_data import SHARED_DATA  # noqa: E402

DATA = Path(os.environ.get("CLIPCURATE_DATA", SHARED_DATA))


def photos(n=48):
    files = sorted((DATA / "imagenet-sample-images-subset").glob("*.JPEG"))[:n]
    return [f.read_bytes() for f in files], [f"a photo of a {f.stem.split('_', 1)[1]}" for f in files]


@pytest.fixture(scope="module", params=[TINY_MODEL, "ViT-B-32"])
def models(request):
    cpu = load_clip(request.param, random_init=True, seed=0, device="cpu")
    gpu = load_clip(request.param, random_init=True, seed=0, device="cuda")
    return cpu, gpu


def test_gpu_fp32_cpu_decode_equals_cpu(models):
    cpu, gpu = models
    images, caps = photos()
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    want = ClipScorer(cpu).score(images, caps).scores
    got = ClipScorer(gpu, device="cuda", precision="fp32", decode="cpu").score(images, caps).scores
    print(f"fp32 gpu vs cpu max abs diff {np.abs(got - want).max():.2e}")
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_gpu_decode_close_to_pillow_and_bf16_close(models):
    cpu, gpu = models
    images, caps = photos()
    exact = ClipScorer(gpu, device="cuda", precision="fp32", decode="cpu").score(images, caps).scores
    s = ClipScorer(gpu, device="cuda", precision="fp32", decode="gpu")
    nv = s.score(images, caps).scores
    assert s._gpu is not None and s._gpu.stats["gpu_decoded"] == len(images)
    bf = ClipScorer(gpu, device="cuda", precision="bf16", decode="gpu").score(images, caps).scores
    d_nv, d_bf = np.abs(nv - exact).max(), np.abs(bf - exact).max()
    rank = np.corrcoef(np.argsort(np.argsort(nv)), np.argsort(np.argsort(exact)))[0, 1]
    print(f"nvjpeg vs Pillow max abs diff {d_nv:.2e}; bf16+nvjpeg {d_bf:.2e}; rank corr {rank:.4f}")
    assert d_nv < 2e-2 and d_bf < 5e-2 and rank > 0.95


def test_gpu_batch_invariance(models):
    """Fixed-size chunks make CPU scores bit-identical; on CUDA they agree to ~1e-8 (H200: the
    tiny model bitwise, ViT-B-32 within 3.7e-9)."""
    _, gpu = models
    images, caps = photos(40)
    s = ClipScorer(gpu, device="cuda", precision="bf16", decode="gpu", chunk_size=16)
    whole = s.score(images, caps).scores
    order = list(range(40))
    random.Random(1).shuffle(order)
    parts = np.empty(40)
    for a, b in [(0, 3), (3, 20), (20, 40)]:
        idx = order[a:b]
        parts[idx] = s.score([images[i] for i in idx], [caps[i] for i in idx]).scores
    assert np.abs(whole - parts).max() < 1e-6


def test_gpu_overlapped_decode_on_side_stream_equals_serial(models):
    """Decode of chunk k+1 on the side stream while the model runs chunk k: the same results
    as without overlap, over many batches (a stream or allocator race would show here)."""
    _, gpu = models
    images, caps = photos(48)
    images[5], images[30] = b"\xff\xd8\xff garbage", b""
    on = ClipScorer(gpu, device="cuda", precision="bf16", decode="gpu", chunk_size=8, overlap=True)
    off = ClipScorer(gpu, device="cuda", precision="bf16", decode="gpu", chunk_size=8, overlap=False)
    assert on._side is not None
    batches = [(images[i:i + 24], caps[i:i + 24]) for i in (0, 24)] * 5
    got = np.concatenate([r.scores for r in on.score_many(batches)])
    want = np.concatenate([r.scores for r in off.score_many(batches)])
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.isnan(got).sum() == 10
    assert np.nanmax(np.abs(got - want)) < 1e-6


def test_gpu_fallbacks_and_errors(models):
    _, gpu = models
    import io
    from PIL import Image
    images, caps = photos(2)
    png = io.BytesIO()
    Image.open(io.BytesIO(images[0])).save(png, format="PNG")
    batch = [images[0], png.getvalue(), b"\xff\xd8\xff garbage", b"", images[1]]
    s = ClipScorer(gpu, device="cuda", decode="gpu")
    res = s.score(batch, ["x"] * 5)
    assert [e is None for e in res.errors] == [True, True, False, False, True]
    assert s._gpu.stats == {"gpu_decoded": 2, "cpu_fallback": 1, "resize_calls": 2}


def test_gpu_same_shape_images_resized_in_one_call_equal_one_by_one(models):
    """Downloader-made 256x256 JPEGs share one resize call; the pixels equal the per-image path."""
    from clipcurate.download.config import DownloadConfig
    from clipcurate.download.image import process_image
    _, gpu = models
    raw, caps = photos(12)
    cfg = DownloadConfig(image_size=256, resize_mode="center_crop", encode_quality=95)
    images = [process_image(b, cfg).image for b in raw[:8]] + raw[8:]  # 8 same-size + 4 raw
    s = ClipScorer(gpu, device="cuda", precision="fp32", decode="gpu")
    px, ok, errors = s.pixels(images)
    assert ok == list(range(12)) and not errors and s._gpu.stats["resize_calls"] <= 5
    one = torch.cat([s.pixels([b])[0] for b in images])
    assert torch.allclose(px, one, atol=1e-4)
    exact = ClipScorer(gpu, device="cuda", precision="fp32", decode="cpu").score(images, caps).scores
    assert np.abs(s.score(images, caps).scores - exact).max() < 2e-2


def test_handler_device_gpu_uses_cuda():
    pytest.importorskip("apache_beam")
    from clipcurate.scoring.config import ScoringConfig
    from clipcurate.scoring.handler import OpenClipModelHandler
    h = OpenClipModelHandler(ScoringConfig(model=TINY_MODEL, random_init=True, device="GPU", precision="bf16"))
    scorer = h.load_model()
    assert scorer.device == "cuda" and scorer._gpu is not None
    images, caps = photos(4)
    preds = list(h.run_inference([{"uid": str(i), "image": b, "caption": c}
                                  for i, (b, c) in enumerate(zip(images, caps))], scorer))
    assert all(p.inference["error"] is None for p in preds)
