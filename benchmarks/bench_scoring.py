"""Scoring throughput: model-only vs end-to-end from stored JPEG bytes, same run, same model.

    python benchmarks/bench_scoring.py prep [--out .benchdata]   # once, on any machine
    python benchmarks/bench_scoring.py run [--data .benchdata] [--model ViT-B-32] [--batch 1024]
        [--precision bf16] [--n 8192] [--sets crop256,keep256,raw] [--json results.json]

prep : re-encodes the real ImageNet sample photos (../shared/data/imagenet-sample-images-subset)
       with our own downloader code (clipcurate.download.image.process_image, 256 px, JPEG q95)
       as ``center_crop`` (every image 256x256: one shape per batch) and ``keep_ratio``
       (shorter side 256, several shapes), copies the raw photos (variable size, ~500x375),
       and stores the real LAION alt-texts of ../shared/data/img2dataset-tests as captions.
run  : model-only     pixels and tokens already on the device: encode_image + encode_text + cosine;
       tokenise       captions/s on one core: open_clip's tokenizer, CaptionTokenizer (python, hf),
                      and CaptionTokenizer in a process pool (what upstream CPU workers give);
       e2e tokens     ClipScorer.score_many(jpeg bytes, tokens made upstream): decode, resize,
                      encode, cosine -- what the GPU worker does per batch after TokenizeCaptions;
                      decode of chunk k+1 overlaps the model on chunk k (and "no_overlap": not);
       e2e serial     the same with tokenisation inside the loop (one process does everything).
Each figure is printed with its ratio to model-only and written to --json after every step
(so a run cut short keeps what it measured).  The model is randomly initialised.
Every timed call is measured with ``_measure`` (wall, CPU of the whole process tree, peak
RSS, load); rates are from the median call of ``--repeats`` and each line prints
median (min-max).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, measure, spread  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SETS = {"crop256": "center_crop", "keep256": "keep_ratio"}


# -- prep -----------------------------------------------------------------------------------

def prep(out: Path, images: Path = SHARED / "imagenet-sample-images-subset",
         captions: Path = SHARED / "img2dataset-tests" / "test_10000.parquet") -> None:
    """Write out/{crop256,keep256,raw}/*.jpg and out/captions.json (see module docstring)."""
    import pyarrow.parquet as pq
    from clipcurate.download.config import DownloadConfig
    from clipcurate.download.image import process_image
    files = sorted(images.glob("*.JPEG"))
    for name, mode in SETS.items():
        (out / name).mkdir(parents=True, exist_ok=True)
        cfg = DownloadConfig(image_size=256, resize_mode=mode, encode_format="jpg", encode_quality=95)
        for f in files:
            res = process_image(f.read_bytes(), cfg)
            if res.status == "ok":
                (out / name / f"{f.stem}.jpg").write_bytes(res.image)
    (out / "raw").mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, out / "raw" / f"{f.stem}.jpg")
    caps = [c for c in pq.read_table(captions, columns=["TEXT"]).column("TEXT").to_pylist() if c]
    (out / "captions.json").write_text(json.dumps(caps))
    print(f"wrote {len(files)} photos x {len(SETS) + 1} sets and {len(caps)} captions to {out}")


# -- run ------------------------------------------------------------------------------------

def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device, repeats, label=""):
    """Median wall seconds of one call over ``repeats`` measured calls (after one warm-up)."""
    fn()  # warm-up (cudnn/cuBLAS autotune, allocator, nvjpeg handles)
    sync(device)
    ms = []
    for _ in range(repeats):
        with measure(label) as m:
            fn()
            sync(device)
        ms.append(m.result)
    print(f"    {label or 'call'}: wall {spread([m.wall_s for m in ms], '{:.4g}')} s, CPU of the process tree "
          f"{spread([m.cpu_s for m in ms], '{:.4g}')} s, peak RSS {max(m.peak_rss for m in ms) / 2**20:,.0f} MiB, "
          f"load {min(m.load_before for m in ms):.1f}-{max(m.load_after for m in ms):.1f}", flush=True)
    return statistics.median(m.wall_s for m in ms)


def load_set(folder: Path, n: int) -> tuple[list[bytes], int]:
    blobs = [open(f, "rb").read() for f in sorted(glob.glob(str(folder / "*.jpg")))]
    if not blobs:
        raise SystemExit(f"no .jpg in {folder}: run `bench_scoring.py prep` first")
    return (blobs * -(-n // len(blobs)))[:n], len(blobs)


_WORKER_TOKENIZER = {}


def _tok_chunk(args):
    """Pool worker: tokenise one chunk with this process's (cached) tokenizer."""
    from clipcurate.scoring.tokens import load_caption_tokenizer
    model, backend, caps = args
    if (model, backend) not in _WORKER_TOKENIZER:
        _WORKER_TOKENIZER[model, backend] = load_caption_tokenizer(model, None, backend)
    _WORKER_TOKENIZER[model, backend](caps)


class Recorder:
    def __init__(self, path):
        self.path, self.out = path, {}

    def __setitem__(self, k, v):
        self.out[k] = round(v, 4) if isinstance(v, float) else v
        if self.path:
            Path(self.path).write_text(json.dumps(self.out, indent=1))


def bench_tokenize(rec: Recorder, model: str, caps: list[str], procs: int) -> None:
    """captions/s, cold caches (each tokenizer sees these captions for the first time)."""
    import open_clip
    from multiprocessing import get_context
    from clipcurate.scoring.tokens import CaptionTokenizer
    t = time.perf_counter()
    open_clip.get_tokenizer(model)(caps)
    rec["tok_open_clip_1core_cap_s"] = len(caps) / (time.perf_counter() - t)
    for backend in ("python", "hf"):
        ct = CaptionTokenizer(open_clip.get_tokenizer(model), backend)
        if backend == "hf" and not ct.uses_hf:
            continue
        t = time.perf_counter()
        ct(caps)
        rec[f"tok_{backend}_1core_cap_s"] = len(caps) / (time.perf_counter() - t)
    backend = "hf" if "tok_hf_1core_cap_s" in rec.out else "python"
    chunks = [(model, backend, caps[i::procs]) for i in range(procs)]
    with get_context("fork").Pool(procs) as pool:
        pool.map(_tok_chunk, [(model, backend, caps[:8])] * procs, chunksize=1)  # build tokenizers
        t = time.perf_counter()
        pool.map(_tok_chunk, chunks, chunksize=1)
        rec[f"tok_{backend}_{procs}proc_cap_s"] = len(caps) / (time.perf_counter() - t)
    print("  tokenise captions/s: " + ", ".join(f"{k} {v:,.0f}" for k, v in rec.out.items() if k.startswith("tok_")))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cmd", choices=["prep", "run"])
    ap.add_argument("--data", "--out", dest="data", default=str(ROOT / ".benchdata"))
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--batch", type=int, default=1024, help="images per ClipScorer.score call (a RunInference batch)")
    ap.add_argument("--chunk", type=int, default=256, help="rows per model call (ClipScorer.chunk_size); "
                    "model-only is timed at this size; with batch > chunk, decode of chunk k+1 overlaps chunk k")
    ap.add_argument("--n", type=int, default=8192, help="images per end-to-end pass")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--sets", default="crop256,keep256,raw")
    ap.add_argument("--decode", default="auto", help="decode path for end-to-end (auto: gpu on CUDA)")
    ap.add_argument("--tok-procs", type=int, default=0, help="processes for parallel tokenising (0: cores, max 8)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default=None, help="write results here (after every step)")
    a = ap.parse_args(argv)
    data = Path(a.data)
    if a.cmd == "prep":
        return prep(data)

    from clipcurate.scoring.model import load_clip, resolve_device
    from clipcurate.scoring.scorer import ClipScorer
    rec = Recorder(a.json)
    cores = len(os.sched_getaffinity(0))
    caps_all = json.loads((data / "captions.json").read_text())
    caps = (caps_all * -(-a.n // len(caps_all)))[:a.n]
    bench_tokenize(rec, a.model, caps_all[:a.n], a.tok_procs or min(8, cores))  # before CUDA (fork)

    device = resolve_device(a.device)
    loaded = load_clip(a.model, random_init=True, device=device)
    rec["device"] = torch.cuda.get_device_name() if device != "cpu" else f"cpu x{cores}"
    b = min(a.batch, a.n)
    c = min(a.chunk, b)
    rec["setup"] = {"model": a.model, "precision": a.precision if device != "cpu" else "fp32",
                    "batch": b, "chunk": c, "n": a.n, "torch": torch.__version__}
    print(f"[{rec.out['device']}] {rec.out['setup']}")
    scorer = ClipScorer(loaded, device=device, precision=a.precision, decode=a.decode, chunk_size=c)
    serial = ClipScorer(loaded, device=device, precision=a.precision, decode=a.decode, chunk_size=c, overlap=False)
    first, _ = load_set(data / a.sets.split(",")[0], c)
    px, _, _ = scorer.pixels(first)
    ids, truncated = scorer.captions(caps[:c])
    tok = torch.as_tensor(ids, dtype=torch.long, device=device)

    def model_only():
        i, t = scorer.embed(px, tok)
        return (i * t).sum(-1)
    print(machine())
    base = c / timed(model_only, device, a.repeats * 3, "model-only")
    rec["model_only_img_s"] = base
    print(f"  model-only: {base:,.0f} images/s")

    batches = range(0, a.n, b)
    tokens = [scorer.captions(caps[i:i + b]) for i in batches]  # made upstream (TokenizeCaptions)
    for name in [s for s in a.sets.split(",") if s]:
        blobs, unique = load_set(data / name, a.n)
        gpu = scorer._gpu
        dec = a.n / timed(lambda: [scorer.pixels(blobs[i:i + b]) for i in batches], device, a.repeats,
                          f"{name} decode+preprocess")
        rec[f"{name}_decode_only_img_s"] = dec
        if gpu is not None:
            gpu.stats.update(gpu_decoded=0, cpu_fallback=0, resize_calls=0)
            t = time.perf_counter()
            for i in batches:
                gpu.decode(blobs[i:i + b])
            sync(device)
            rec[f"{name}_nvjpeg_only_img_s"] = a.n / (time.perf_counter() - t)
            scorer.pixels(blobs[:b])
            rec[f"{name}_gpu_stats_one_batch"] = dict(gpu.stats)

        def e2e_tokens():
            for _ in scorer.score_many((blobs[i:i + b], None, tokens[j]) for j, i in enumerate(batches)):
                pass

        def e2e_no_overlap():
            for _ in serial.score_many((blobs[i:i + b], None, tokens[j]) for j, i in enumerate(batches)):
                pass

        def e2e_serial():
            for _ in scorer.score_many((blobs[i:i + b], caps[i:i + b]) for i in batches):
                pass
        for label, fn in (("tokens_upstream", e2e_tokens), ("tokens_upstream_no_overlap", e2e_no_overlap),
                          ("serial", e2e_serial)):
            rate = a.n / timed(fn, device, a.repeats, f"{name} e2e {label}")
            rec[f"{name}_e2e_{label}_img_s"] = rate
            rec[f"{name}_e2e_{label}_ratio"] = rate / base
        print(f"  {name} ({unique} distinct): decode+preprocess {dec:,.0f}/s; end-to-end tokens upstream "
              f"{rec.out[f'{name}_e2e_tokens_upstream_img_s']:,.0f}/s (ratio "
              f"{rec.out[f'{name}_e2e_tokens_upstream_ratio']:.3f}), without overlap "
              f"{rec.out[f'{name}_e2e_tokens_upstream_no_overlap_img_s']:,.0f}/s, serial "
              f"{rec.out[f'{name}_e2e_serial_img_s']:,.0f}/s ({rec.out[f'{name}_e2e_serial_ratio']:.3f})")

    if device != "cpu":  # agreement of the fast path with the exact one on the stored JPEGs
        blobs, _ = load_set(data / a.sets.split(",")[0], 256)
        fast = scorer.score(blobs, caps[:256]).scores
        exact = ClipScorer(loaded, device=device, precision="fp32", decode="cpu").score(blobs, caps[:256]).scores
        rec["agreement_max_abs_diff_bf16_gpu_vs_fp32_pillow"] = float(np.abs(fast - exact).max())
        print(f"  bf16 + GPU decode vs fp32 + Pillow: max |diff| {rec.out['agreement_max_abs_diff_bf16_gpu_vs_fp32_pillow']:.2e}")
    return rec.out


if __name__ == "__main__":
    main()
