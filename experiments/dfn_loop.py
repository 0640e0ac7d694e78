"""The DFN loop on real images: does a filter network trained on a little clean data make a
better training set out of a noisy pool?  (Fang et al., "Data Filtering Networks", 2023.)

Steps (all seeded; numbers are printed and written to ``<work>/results.json``):

1. Split the CIFAR-10 test JPEGs (../shared/data/cifar10-test-jpeg) per class into a
   held-out evaluation split (never trained on), a candidate pool and a clean subset.
2. Caption the pool from varied templates (none of them an evaluation template) and corrupt
   a known fraction: half of the corrupted captions name a wrong class, half are random words
   (class names of unrelated datasets from ../shared/data/openai-clip-prompts).
3. Serve the pool's images from a loopback HTTP server under opaque names and run the
   pool through the clipcurate pipeline: without scoring (the unfiltered shards) and with the
   scoring stage using the filter network, keeping the top ``--keep`` fraction (and once more
   per ``--extra-keeps`` fraction).
4. The filter network is the same tiny CLIP trained on the clean subset only (default 3,000
   pairs, 300 steps x 128: enough epochs to learn, few enough not to overfit; see docs/trainer.md).
5. Train the tiny CLIP from scratch on each set of shards with the same number of samples
   seen; evaluate zero-shot (CIFAR-10 classes x the 18 CLIP_benchmark templates) and by a
   linear probe on the held-out split.  Report the filter's precision/recall against the
   known corrupted captions.

Run:  python experiments/dfn_loop.py --work /tmp/dfn [--seed 0]   (about 5 min on 2 shared cores)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import webdataset as wds

os.environ.setdefault("HF_HUB_OFFLINE", "1")


from clipcurate.config import RunConfig  # noqa: E402
from clipcurate.demo import serve_directory  # noqa: E402
from clipcurate.scoring.model import load_clip  # noqa: E402
from clipcurate.testing.shared_data import SHARED_DATA  # noqa: E402
from clipcurate.trainer.config import TrainConfig  # noqa: E402
from clipcurate.trainer.images import encode_images, split_balanced  # noqa: E402
from clipcurate.trainer.linear_probe import linear_probe  # noqa: E402
from clipcurate.trainer.prompts import load_list, parse_prompts_md  # noqa: E402
from clipcurate.trainer.train import train  # noqa: E402
from clipcurate.trainer.zeroshot import build_classifier, zeroshot_classify  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = SHARED_DATA
CIFAR = DATA / "cifar10-test-jpeg" / "test"
PROMPTS_MD = DATA / "openai-clip-prompts" / "prompts.md"
EVAL_TEMPLATES = DATA / "clip-benchmark-zeroshot" / "en_zeroshot_classification_templates.json"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# training captions: none equals a zero-shot evaluation template
CAPTION_TEMPLATES = [
    "my {c}", "this is a {c}", "look at that {c}!", "a {c} in the picture", "{c}, low resolution",
    "an old snapshot showing a {c}", "there is a {c} here", "{c} photographed outdoors", "a tiny image of a {c}",
    "the {c} from my trip", "close-up of a {c}", "what a nice {c}", "a {c} seen from the side",
]
NOISE_SOURCES = ("Food101", "DescribableTextures", "SUN397", "Country211")
log = logging.getLogger("dfn_loop")


def _h(*parts) -> str:
    return hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).hexdigest()


def _u(seed: int, *parts) -> float:
    return int(_h(seed, *parts), 16) / 2 ** 64


def noise_words() -> list[str]:
    """Words from class names of unrelated datasets, none containing a CIFAR-10 class word."""
    md = parse_prompts_md(PROMPTS_MD.read_text(encoding="utf-8"))
    banned = set(CLASSES) | {"car", "plane", "aircraft", "airliner", "truck", "boat", "kitten", "puppy"}
    words = {w.strip("(),.'").lower() for ds in NOISE_SOURCES for name in md[ds]["classes"] for w in name.split()}
    return sorted(w for w in words if len(w) > 2 and w.isalpha() and w not in banned)


def split_cifar(eval_per_class: int, clean_per_class: int, pool_per_class: int) -> dict[str, list[tuple[Path, int]]]:
    """Disjoint per-class ranges of file numbers: eval [0, e), pool [e, e+p), clean [e+p, e+p+c)
    (the clean subset comes last, so a larger clean subset leaves eval split and pool unchanged)."""
    if eval_per_class + clean_per_class + pool_per_class > 1000:
        raise ValueError("CIFAR-10 test has 1000 images per class")
    parts: dict[str, list[tuple[Path, int]]] = {"eval": [], "clean": [], "pool": []}
    e, p, c = eval_per_class, pool_per_class, clean_per_class
    for y, name in enumerate(CLASSES):
        for part, (a, b) in {"eval": (0, e), "pool": (e, e + p), "clean": (e + p, e + p + c)}.items():
            parts[part] += [(CIFAR / name / f"{i:04d}.jpg", y) for i in range(a, b)]
    return parts


def caption_for(path: Path, y: int, seed: int, corrupt: float, words: list[str]) -> tuple[str, str]:
    """(caption, kind) with kind clean | wrong_class | random_words, drawn from (seed, file)."""
    key = f"{CLASSES[y]}/{path.name}"
    template = CAPTION_TEMPLATES[int(_u(seed, "tpl", key) * len(CAPTION_TEMPLATES))]
    r = _u(seed, "corrupt", key)
    if r >= corrupt:
        return template.format(c=CLASSES[y]), "clean"
    if r < corrupt / 2:
        wrong = (y + 1 + int(_u(seed, "wrong", key) * 9)) % 10
        return template.format(c=CLASSES[wrong]), "wrong_class"
    rng = random.Random(_h(seed, "words", key))
    return " ".join(rng.sample(words, rng.randint(2, 5))), "random_words"


def build_pool(work: Path, pool, seed: int, corrupt: float) -> tuple[Path, Path]:
    """Write the pool's images under opaque names into work/web, and the truth table."""
    web = work / "web"
    web.mkdir(parents=True, exist_ok=True)
    words = noise_words()
    rows = []
    for path, y in pool:
        name = f"{_h('img', CLASSES[y], path.name)}.jpg"
        shutil.copyfile(path, web / name)
        caption, kind = caption_for(path, y, seed, corrupt, words)
        rows.append({"name": name, "caption": caption, "kind": kind, "label": y})
    truth = work / "pool_truth.parquet"
    pq.write_table(pa.Table.from_pylist(rows), truth)
    return web, truth


def write_clean_shards(out: Path, clean, seed: int, per_shard: int = 256) -> Path:
    """The small clean subset as webdataset shards (captions from the same templates, no noise).
    Keys (hence shard order and training order) come from the class and file name, never from
    where the checkout is: the same images give the same bytes from any directory."""
    out.mkdir(parents=True, exist_ok=True)
    rows = sorted((_h("clean", CLASSES[y], p.name), caption_for(p, y, seed, 0.0, [])[0], p.read_bytes())
                  for p, y in clean)
    for s in range(0, len(rows), per_shard):
        with wds.TarWriter(str(out / f"{s // per_shard:05d}.tar"), mtime=0) as w:  # no clock in the bytes
            for key, caption, data in rows[s:s + per_shard]:
                w.write({"__key__": key, "jpg": data, "txt": caption})
    return out


def pipeline_config(out: Path, candidates: Path, seed: int, filter_ckpt: str | None, keep: float,
                    model: str) -> RunConfig:
    cfg = RunConfig()
    cfg.seed = seed
    cfg.ingest.inputs = [str(candidates)]
    cfg.balance.enabled = False
    cfg.download.allow_loopback = True
    cfg.download.respect_robots = False
    cfg.download.keep_original = True        # the 32x32 JPEGs as they are
    cfg.download.concurrency = 32
    cfg.dedupe.caption_near = False
    cfg.dedupe.image_near = False
    cfg.scoring.enabled = filter_ckpt is not None
    cfg.scoring.model = model
    cfg.scoring.checkpoint = filter_ckpt
    cfg.scoring.device = "cpu"
    cfg.scoring.top_fraction = keep if filter_ckpt else None
    cfg.sink.output = str(out)
    cfg.sink.samples_per_shard = 500
    cfg.sink.keep_rejects = True
    return cfg


def run_pipeline(cfg: RunConfig, beam_args: list[str]) -> dict:
    from clipcurate.pipelines.curate import run
    t0 = time.perf_counter()
    manifest = run(cfg, beam_args)
    manifest["_wall_seconds"] = round(time.perf_counter() - t0, 1)
    return manifest


def _rows(run_dir: Path, sub: str) -> list[dict]:
    return [r for f in sorted((run_dir / sub).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def filter_quality(filtered_dir: Path, truth: dict[str, dict]) -> dict:
    """Precision/recall of 'removed by the score filter' against 'caption was corrupted', over the
    rows that reached the filter; plus ROC AUC of the score for clean vs corrupted."""
    kept = _rows(filtered_dir, "parquet")
    removed = [r for r in _rows(filtered_dir, "rejects") if r.get("stage", "").startswith("score")]
    bad = lambda r: truth[r["url"].rsplit("/", 1)[-1]]["kind"] != "clean"  # noqa: E731
    tp = sum(bad(r) for r in removed)
    n_bad = tp + sum(bad(r) for r in kept)
    from sklearn.metrics import roc_auc_score
    scored = kept + removed
    labels = [0 if bad(r) else 1 for r in scored]
    return {"reached_filter": len(scored), "corrupted": n_bad, "removed": len(removed),
            "precision": tp / len(removed) if removed else None, "recall": tp / n_bad if n_bad else None,
            "clean_fraction_before": 1 - n_bad / len(scored), "clean_fraction_kept": 1 - sum(bad(r) for r in kept) / len(kept),
            "score_auc_clean_vs_corrupted": float(roc_auc_score(labels, [r["clip_score"] for r in scored]))
            if 0 < sum(labels) < len(labels) else None,
            "by_kind_kept": {k: sum(1 for r in kept if truth[r["url"].rsplit('/', 1)[-1]]["kind"] == k)
                             for k in ("clean", "wrong_class", "random_words")}}


def evaluate(model: str, checkpoint: str, heldout, seed: int) -> dict:
    """Zero-shot top-1/top-5 (CIFAR-10 classes x 18 templates) and a linear probe on the held-out split."""
    loaded = load_clip(model, checkpoint=checkpoint)
    paths, labels = [str(p) for p, _ in heldout], [y for _, y in heldout]
    templates = load_list(str(EVAL_TEMPLATES), "templates", "cifar10")
    clf = build_classifier(loaded.model, loaded.tokenizer, CLASSES, templates)
    zs = zeroshot_classify(encode_images(loaded.model, loaded.preprocess, paths), clf, CLASSES, labels)
    feats = encode_images(loaded.model, loaded.preprocess, paths, normalize=False)
    tr, te = split_balanced(labels, 0.5, seed)
    y = np.array(labels)
    lp = linear_probe(feats[tr], y[tr], feats[te], y[te], c_values=np.logspace(-6, 4, 11).tolist(), seed=seed)
    return {"zeroshot_top1": zs["top1"], "zeroshot_top5": zs["top5"], "zeroshot_per_class": zs["per_class_top1"],
            "linear_probe_top1": lp["top1"], "linear_probe_best_C": lp["best_C"], "n_eval": len(paths)}


def train_clip(model: str, shards: Path, out: Path, steps: int, batch: int, seed: int, lr: float,
               threads: int) -> dict:
    cfg = TrainConfig(shards=str(shards), output=str(out), model=model, steps=steps, batch_size=batch, lr=lr,
                      warmup_steps=max(1, steps // 10), seed=seed, shuffle_buffer=2000, threads=threads,
                      weight_decay=0.1, progress=sys.stderr.isatty())
    s = train(cfg)
    return {k: s[k] for k in ("steps", "samples_seen", "final_checkpoint", "seconds", "samples_per_s")} | {
        "loss_first": s["losses"][0], "loss_last10": float(np.mean(s["losses"][-10:])), "lr": lr, "batch_size": batch}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="dfn_work")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="dfn-vit-tiny", help="open_clip config for the filter and both CLIPs")
    ap.add_argument("--eval-per-class", type=int, default=100)
    ap.add_argument("--clean-per-class", type=int, default=300, help="clean pairs per class the filter network trains on")
    ap.add_argument("--pool-per-class", type=int, default=400)
    ap.add_argument("--corrupt", type=float, default=0.5, help="fraction of pool captions corrupted")
    ap.add_argument("--keep", type=float, default=0.5, help="top fraction kept by the filter network")
    ap.add_argument("--extra-keeps", default="", help="comma list of further keep fractions, each run as one more "
                    "filtered arm (pipeline + training + eval) against the same unfiltered baseline (ablation)")
    ap.add_argument("--filter-steps", type=int, default=300, help="filter network steps (300 x 128 = 12.8 epochs of 3,000 pairs)")
    ap.add_argument("--steps", type=int, default=200, help="steps of each of the two final trainings")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest when the CPU is shared)")
    ap.add_argument("--port", type=int, default=18765, help="loopback server port (0: a free one; a busy one falls "
                    "back to a free one with a note). URLs, hence uids, shard assignment and training order, "
                    "include it: a fixed port makes reruns identical")
    ap.add_argument("--beam-args", default="", help="extra Beam options, space separated")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", force=True)
    log.setLevel(logging.INFO)
    torch.set_num_threads(args.threads)
    work = Path(args.work).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 1)
        log.info("%s done in %.1f s", name, timings[name])

    parts = split_cifar(args.eval_per_class, args.clean_per_class, args.pool_per_class)
    t0 = time.perf_counter()
    web, truth_path = build_pool(work, parts["pool"], args.seed, args.corrupt)
    truth = {r["name"]: r for r in pq.read_table(truth_path).to_pylist()}
    clean = write_clean_shards(work / "clean_shards", parts["clean"], args.seed)
    lap("build_pool", t0)

    t0 = time.perf_counter()
    filt = train_clip(args.model, clean, work / "filter_net", args.filter_steps, args.batch_size, args.seed, args.lr, args.threads)
    lap("train_filter", t0)

    beam_args = args.beam_args.split()
    with serve_directory(web, port=args.port) as base:
        cands = work / "candidates.parquet"
        pq.write_table(pa.table({"url": [f"{base}/{n}" for n in sorted(truth)],
                                 "caption": [truth[n]["caption"] for n in sorted(truth)]}), cands)
        t0 = time.perf_counter()
        m_unf = run_pipeline(pipeline_config(work / "run_unfiltered", cands, args.seed, None, args.keep,
                                               args.model), beam_args)
        lap("pipeline_unfiltered", t0)
        m_fil = {}
        for keep in [args.keep] + [float(k) for k in args.extra_keeps.split(",") if k]:
            t0 = time.perf_counter()
            m_fil[keep] = run_pipeline(pipeline_config(work / f"run_filtered_keep{keep}", cands, args.seed,
                                                       filt["final_checkpoint"], keep, args.model), beam_args)
            lap(f"pipeline_filtered_keep{keep}", t0)

    results = {"seed": args.seed, "args": vars(args), "filter_network": filt}
    arms = [("unfiltered", work / "run_unfiltered", m_unf)] + [
        ("filtered" if k == args.keep else f"filtered_keep{k}", work / f"run_filtered_keep{k}", m) for k, m in m_fil.items()]
    for name, run_dir, manifest in arms:
        t0 = time.perf_counter()
        tr = train_clip(args.model, run_dir, work / f"clip_{name}", args.steps, args.batch_size, args.seed, args.lr, args.threads)
        lap(f"train_{name}", t0)
        t0 = time.perf_counter()
        results[name] = {"train": tr, "eval": evaluate(args.model, tr["final_checkpoint"], parts["eval"], args.seed),
                         "shard_rows": manifest["total_samples"]}
        if name != "unfiltered":
            results[name]["filter_quality"] = filter_quality(run_dir, truth)
            for metric in ("zeroshot_top1", "linear_probe_top1"):
                results[name][f"delta_{metric}_points"] = 100 * (results[name]["eval"][metric]
                                                                 - results["unfiltered"]["eval"][metric])
        lap(f"eval_{name}", t0)
    results["filter_quality"] = results["filtered"]["filter_quality"]
    t0 = time.perf_counter()
    results["filter_network"]["eval"] = evaluate(args.model, filt["final_checkpoint"], parts["eval"], args.seed)
    lap("eval_filter_network", t0)
    results["delta_zeroshot_top1_points"] = 100 * (results["filtered"]["eval"]["zeroshot_top1"]
                                                   - results["unfiltered"]["eval"]["zeroshot_top1"])
    results["delta_linear_probe_top1_points"] = 100 * (results["filtered"]["eval"]["linear_probe_top1"]
                                                       - results["unfiltered"]["eval"]["linear_probe_top1"])
    results["manifests"] = {"unfiltered": m_unf} | {name: m for name, _, m in arms[1:]}
    results["timings_s"] = timings | {"total": round(time.perf_counter() - t_start, 1)}
    (work / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(summary_text(results))
    return results


def summary_text(r: dict) -> str:
    """A few printable lines: the filter's quality, each arm's numbers, the gains."""
    q = r["filter_quality"]
    arms = ["unfiltered", "filtered"] + sorted(k for k in r if k.startswith("filtered_keep"))
    lines = [f"seed {r['seed']}; pool {q['reached_filter']} pairs reached the filter, {q['corrupted']} corrupted",
             f"{'':20}{'rows':>6}{'samples':>9}{'zs top1':>9}{'zs top5':>9}{'probe':>8}{'zs gain':>9}"
             f"{'P':>7}{'R':>7}{'AUC':>7}{'clean kept':>11}"]
    for name in arms:
        x, e = r[name], r[name]["eval"]
        line = (f"{name:20}{x['shard_rows']:>6}{x['train']['samples_seen']:>9}{e['zeroshot_top1']:>9.3f}"
                f"{e['zeroshot_top5']:>9.3f}{e['linear_probe_top1']:>8.3f}")
        if name != "unfiltered":
            fq = x["filter_quality"]
            line += (f"{x['delta_zeroshot_top1_points']:>+9.1f}{fq['precision']:>7.3f}{fq['recall']:>7.3f}"
                     f"{fq['score_auc_clean_vs_corrupted']:>7.3f}{fq['clean_fraction_kept']:>11.3f}")
        lines.append(line)
    fe = r["filter_network"]["eval"]
    lines.append(f"{'filter net':20}{'':>6}{r['filter_network']['samples_seen']:>9}{fe['zeroshot_top1']:>9.3f}"
                 f"{fe['zeroshot_top5']:>9.3f}{fe['linear_probe_top1']:>8.3f}")
    lines.append(f"delta zero-shot top-1 (keep {r['args']['keep']}): {r['delta_zeroshot_top1_points']:+.1f} points; "
                 f"linear probe: {r['delta_linear_probe_top1_points']:+.1f} points; total {r['timings_s']['total']} s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
