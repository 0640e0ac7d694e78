"""How good is the DFN experiment's filter network, per recipe?  (A quick side study of
experiments/dfn_loop.py: no pipeline, no downstream CLIP.)

For each recipe ``clean_per_class:steps`` the tiny CLIP is trained on that many clean CIFAR-10
pairs per class (the same split and caption templates as dfn_loop.py) and scores every pool pair
(cosine similarity of the L2-normalised embeddings, as the scoring stage does).  Printed and
written to ``<work>/filter_ablation.json``: ROC AUC clean vs corrupted (overall, wrong-class only,
random-words only) and precision/recall of "removed" against "corrupted" when the top ``keep``
fractions are kept.  All pool pairs are scored here (dfn_loop.py scores only the pairs that pass
the pipeline's language filter), so the numbers differ slightly from a full loop's.

Run:  python experiments/dfn_filter_ablation.py --work /tmp/dfn_abl --seed 0 --recipes 150:120,300:300
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dfn_loop as dfn  # noqa: E402

from clipcurate.scoring.model import load_clip  # noqa: E402
from clipcurate.trainer.images import encode_images  # noqa: E402


def pool_scores(checkpoint: str, pool, seed: int, corrupt: float, model: str) -> tuple[np.ndarray, list[str]]:
    """Cosine similarity of each pool image with its (possibly corrupted) caption, and the kinds."""
    loaded = load_clip(model, checkpoint=checkpoint)
    words = dfn.noise_words()
    caps = [dfn.caption_for(p, y, seed, corrupt, words) for p, y in pool]
    img = torch.from_numpy(encode_images(loaded.model, loaded.preprocess, [str(p) for p, _ in pool]))
    with torch.no_grad():
        txt = torch.cat([loaded.model.encode_text(loaded.tokenizer([c for c, _ in caps[i:i + 512]]))
                         for i in range(0, len(caps), 512)])
    txt = torch.nn.functional.normalize(txt.float(), dim=-1)
    img = torch.nn.functional.normalize(img.float(), dim=-1)
    return (img * txt).sum(-1).numpy(), [k for _, k in caps]


def quality(scores: np.ndarray, kinds: list[str], keeps: list[float]) -> dict:
    """AUCs (clean vs each corruption) and precision/recall of removal at each keep fraction."""
    kinds_a = np.array(kinds)
    clean = kinds_a == "clean"
    out = {"auc": float(roc_auc_score(clean, scores))}
    for k in ("wrong_class", "random_words"):
        m = clean | (kinds_a == k)
        out[f"auc_{k}"] = float(roc_auc_score(clean[m], scores[m]))
    for keep in keeps:
        n_keep = int(round(keep * len(scores)))
        removed = np.ones(len(scores), bool)
        removed[np.argsort(-scores, kind="stable")[:n_keep]] = False
        tp = int((removed & ~clean).sum())
        out[f"keep{keep}"] = {"precision": tp / removed.sum(), "recall": tp / (~clean).sum(),
                              "clean_fraction_kept": float(clean[~removed].mean())}
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="dfn_abl")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="dfn-vit-tiny")
    ap.add_argument("--recipes", default="150:120,150:300,300:120,300:300",
                    help="comma list of clean_per_class:steps")
    ap.add_argument("--corrupt", type=float, default=0.5)
    ap.add_argument("--keeps", default="0.5,0.3")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    keeps = [float(k) for k in args.keeps.split(",")]
    results = {"seed": args.seed, "args": vars(args), "recipes": {}}
    for recipe in args.recipes.split(","):
        per_class, steps = map(int, recipe.split(":"))
        parts = dfn.split_cifar(100, per_class, 400)
        shards = dfn.write_clean_shards(work / f"clean_{per_class}_s{args.seed}", parts["clean"], args.seed)
        tr = dfn.train_clip(args.model, shards, work / f"filter_{recipe.replace(':', '_')}_s{args.seed}", steps,
                            args.batch_size, args.seed, args.lr, args.threads)
        scores, kinds = pool_scores(tr["final_checkpoint"], parts["pool"], args.seed, args.corrupt, args.model)
        q = quality(scores, kinds, keeps) | {"train_seconds": tr["seconds"], "loss_last10": tr["loss_last10"]}
        results["recipes"][recipe] = q
        print(f"seed {args.seed} clean/class {per_class} steps {steps}: AUC {q['auc']:.3f} (wrong class "
              f"{q['auc_wrong_class']:.3f}, random words {q['auc_random_words']:.3f}); "
              + "; ".join(f"keep {k}: P {q[f'keep{k}']['precision']:.3f} R {q[f'keep{k}']['recall']:.3f} "
                          f"clean kept {q[f'keep{k}']['clean_fraction_kept']:.3f}" for k in keeps), flush=True)
    (work / f"filter_ablation_s{args.seed}.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
