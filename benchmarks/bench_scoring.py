"""Scoring throughput: model-only vs end-to-end from stored JPEG bytes, same run, same model.

    python benchmarks/bench_scoring.py [--model ViT-B-32] [--batch 1024] [--precision bf16]
        [--images DIR] [--n 4096] [--decode gpu,cpu] [--decode-threads 16]

model-only   : pixels and tokens already on the device; encode_image + encode_text + cosine.
end-to-end   : ClipScorer.score(jpeg bytes, captions): decode (GPU nvjpeg or CPU Pillow),
               resize/crop/normalise, tokenise, encode, cosine -- what a worker does per batch.
Prints images/s for each and the ratio end-to-end / model-only; on the CPU also per core.
The model is randomly initialised (throughput does not depend on the weights).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from clipcurate.scoring.model import load_clip, resolve_device
from clipcurate.scoring.scorer import ClipScorer, tokenize

DEFAULT_IMAGES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "imagenet-sample-images-subset")


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device, repeats):
    fn()  # warm-up (cudnn/cuBLAS autotune, allocator, nvjpeg handles)
    sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - t) / repeats


def load_jpegs(folder, n):
    files = sorted(glob.glob(os.path.join(folder, "*.JPEG")) + glob.glob(os.path.join(folder, "*.jpg")))
    if not files:
        raise SystemExit(f"no JPEG files in {folder}")
    blobs = [open(f, "rb").read() for f in files]
    caps = [f"a photo of a {os.path.basename(f).split('_', 1)[-1].rsplit('.', 1)[0].replace('_', ' ')}" for f in files]
    reps = -(-n // len(blobs))
    return (blobs * reps)[:n], (caps * reps)[:n], len(files)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--n", type=int, default=4096, help="images per end-to-end pass")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--images", default=DEFAULT_IMAGES)
    ap.add_argument("--decode", default="gpu,cpu", help="comma list of decode paths to time")
    ap.add_argument("--decode-threads", type=int, default=0, help="Pillow threads (0: all cores)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args(argv)

    device = resolve_device(a.device)
    cores = len(os.sched_getaffinity(0))
    threads = a.decode_threads or cores
    loaded = load_clip(a.model, random_init=True, device=device)
    blobs, caps, unique = load_jpegs(a.images, a.n)
    mean_kb = sum(map(len, blobs[:unique])) / unique / 1024
    out = {"model": a.model, "device": torch.cuda.get_device_name() if device != "cpu" else f"cpu x{cores}",
           "precision": a.precision if device != "cpu" else "fp32", "batch": a.batch, "n": a.n,
           "unique_images": unique, "mean_jpeg_kb": round(mean_kb, 1), "torch": torch.__version__}

    # model-only: the same batch of real preprocessed pixels, resident on the device
    scorer = ClipScorer(loaded, device=device, precision=a.precision, decode="cpu",
                        decode_threads=threads, chunk_size=a.batch)
    b = min(a.batch, a.n)
    px, ok, _ = scorer.pixels(blobs[:b])
    tok, _ = tokenize(loaded.tokenizer, caps[:b])
    px, tok = px.to(device), tok.to(device)

    def model_only():
        i, t = scorer.embed(px, tok)
        return (i * t).sum(-1)
    dt = timed(model_only, device, a.repeats * 3)
    out["model_only_img_s"] = b / dt
    print(f"[{out['device']}] {a.model} {out['precision']} batch {b}: model-only {b / dt:,.0f} images/s")

    def image_only():
        return loaded.model.encode_image(px) if device == "cpu" else _ac(lambda: loaded.model.encode_image(px))

    def _ac(fn):
        with torch.inference_mode(), scorer._autocast():
            return fn()
    dt = timed(image_only, device, a.repeats * 3)
    out["image_encoder_only_img_s"] = b / dt
    print(f"  image encoder only: {b / dt:,.0f} images/s")

    for mode in [m for m in a.decode.split(",") if m]:
        if mode == "gpu" and device == "cpu":
            continue
        s = ClipScorer(loaded, device=device, precision=a.precision, decode=mode,
                       decode_threads=threads, chunk_size=a.batch)

        def e2e():  # score_many: batch i+1 is launched before batch i's results are read
            for _ in s.score_many((blobs[i:i + a.batch], caps[i:i + a.batch]) for i in range(0, a.n, a.batch)):
                pass
        dt = timed(e2e, device, a.repeats)
        rate = a.n / dt
        dec = timed(lambda: [s.pixels(blobs[i:i + a.batch]) for i in range(0, a.n, a.batch)], device, 1)
        out[f"decode_only_{mode}_img_s"] = a.n / dec
        print(f"  decode+preprocess only decode={mode}: {a.n / dec:,.0f} images/s")
        out[f"e2e_{mode}_img_s"] = rate
        out[f"ratio_{mode}"] = rate / out["model_only_img_s"]
        extra = f", {rate / threads:,.0f} images/s per decode thread" if mode == "cpu" else \
            f", gpu-decoded {s._gpu.stats['gpu_decoded'] if s._gpu else 0}, cpu-fallback {s._gpu.stats['cpu_fallback'] if s._gpu else 0}"
        print(f"  end-to-end decode={mode}: {rate:,.0f} images/s, ratio {rate / out['model_only_img_s']:.3f}{extra}")

    t = time.perf_counter()
    tokenize(loaded.tokenizer, caps[:2048])
    out["tokenize_captions_s_one_core"] = 2048 / (time.perf_counter() - t)
    print(f"  tokenise (python BPE, one core): {out['tokenize_captions_s_one_core']:,.0f} captions/s")
    if device == "cpu":
        print(f"  per core: model-only {out['model_only_img_s'] / cores:,.1f} images/s/core "
              f"({cores} cores, torch threads {torch.get_num_threads()})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
