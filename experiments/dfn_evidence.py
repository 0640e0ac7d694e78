"""DFN evidence (issue #17): web-like caption noise, fair baselines at equal samples seen,
out-of-distribution evaluation and a scoring sanity check on real photos.

Builds on experiments/dfn_loop.py (same CIFAR-10 split, clean subset, caption templates, tiny
CLIP, filter network, loopback server and real pipeline), but:

1. **Web-like noise.**  A seeded fraction of the pool's captions (each of ``--rates``) is replaced,
   in equal parts, by one of four kinds (the truth is in ``pool_truth_r<rate>.parquet``):
   ``alt_text`` (a real LAION alt text from ../shared/data/img2dataset-tests, fluent and
   irrelevant, none naming a CIFAR-10 class), ``hard_negative`` (names a CIFAR-10 class in
   another context, "a bag of dog food", "airplane mode icon"; the named class is never the
   image's class), ``file_name`` (camera and upload defaults, "IMG_1234.jpg", "DSC_0042.JPG")
   and ``near_duplicate`` (a handful of boilerplate alt texts repeated with small edits).
2. **Arms at equal samples seen** (every arm trains the same tiny CLIP from scratch for
   ``--steps`` x ``--batch-size`` samples): ``unfiltered`` (pipeline with every filter off);
   ``unfiltered+clean`` (those shards plus the filter network's clean subset); ``clean_only``;
   ``text+balance`` (text filters with English only, then MetaCLIP balancing on WordNet metadata);
   ``clipscore`` (score filter with a CLIP trained on the unfiltered pool: DataComp's CLIP-score
   baseline, same keep fraction); ``dfn`` (score filter with the filter network);
   ``text+balance+dfn`` (the whole pipeline).  Noise rates other than ``--train-rate`` run the
   pipelines only (plus the unfiltered CLIP that the CLIP-score filter needs), for the removal table.
3. **Evaluation**: CIFAR-10 held-out split (zero-shot, linear probe as dfn_loop.py) and the
   ImageNet sample images whose synsets fall under a CIFAR-10 class in WordNet (``OOD_MAP``):
   zero-shot over the 10 CIFAR-10 classes, and the CIFAR-trained linear probe applied to them.
4. **Scoring sanity** with the filter network (and the CLIP-score CLIP): the 18 Open Images
   photos against their Flickr titles and against a seeded derangement of the titles, and the
   CLIPScore example's good/bad caption pairs: how often the true caption scores higher.

Everything is written to ``<work>/evidence.json`` (no paths, no times except ``timings_s``)
and printed as tables.

Run (the quick recipe: 386 s for one seed alone on 2 cores; ~55 min each with three seeds in parallel on a loaded VM):
    python experiments/dfn_evidence.py --work /tmp/ev --seed 0
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dfn_loop as dfn  # noqa: E402

from clipcurate.demo import serve_directory  # noqa: E402
from clipcurate.scoring.model import load_clip  # noqa: E402
from clipcurate.trainer.images import encode_images, split_balanced  # noqa: E402
from clipcurate.trainer.linear_probe import linear_probe  # noqa: E402
from clipcurate.trainer.prompts import load_list, parse_prompts_md  # noqa: E402
from clipcurate.trainer.zeroshot import build_classifier, zeroshot_classify  # noqa: E402

DATA = dfn.DATA
CLASSES = dfn.CLASSES
ALT_TEXTS = DATA / "img2dataset-tests" / "test_10000.parquet"
IMAGENET = DATA / "imagenet-sample-images-subset"
OPEN_IMAGES = DATA / "open-images-cc-test-images"
CLIPSCORE = DATA / "clipscore-example"
WORDNET_DIR = "/usr/share/wordnet"
NOISE_KINDS = ("alt_text", "hard_negative", "file_name", "near_duplicate")
# words that make an alt text name a CIFAR-10 class (such alt texts are not "irrelevant")
CLASS_WORDS = set(CLASSES) | {"car", "cars", "plane", "planes", "aircraft", "airliner", "jet", "trucks", "boat",
                              "boats", "ship", "ships", "cats", "kitten", "dogs", "puppy", "birds", "horses",
                              "pony", "frogs", "toad", "deers", "fawn", "vessel", "yacht", "lorry", "automobiles"}
# hard negatives: the class word in a context that does not show the object
HARD_NEGATIVES = {
    "airplane": ["airplane mode icon", "airplane mode on my phone", "paper airplane folding instructions",
                 "airplane seat map", "airplane ticket confirmation"],
    "automobile": ["automobile insurance quote", "automobile association logo", "automobile repair manual pdf",
                   "automobile loan calculator", "automobile museum entrance ticket"],
    "bird": ["bird seed bag 20 lb", "angry bird t-shirt", "bird feeder pole", "early bird discount code",
             "bird cage cover"],
    "cat": ["cat food can", "cat litter box", "cat scratching post", "cat eye sunglasses", "cat 6 ethernet cable"],
    "deer": ["deer repellent spray", "deer hunting license", "deer crossing sign", "deer antler chandelier",
             "deer park water bottle"],
    "dog": ["a bag of dog food", "dog leash for sale", "hot dog with mustard", "dog bed cushion",
            "dog grooming price list"],
    "frog": ["frog pond fountain pump", "frog tape painter's tape", "frog kermit plush toy", "frog lamp shade",
             "frog pose yoga mat"],
    "horse": ["horse saddle pad", "horse power engine chart", "horse riding boots", "rocking horse wood plan",
              "horse trailer hitch"],
    "ship": ["ship tracking app", "free ship to store", "ship in a bottle kit", "ship model glue",
             "ship date calendar"],
    "truck": ["truck bed liner", "truck stop diner menu", "truck tire chains", "toy truck box",
              "truck driver job application"],
}
FILE_NAMES = ["IMG_{n:04d}.jpg", "DSC_{n:04d}.JPG", "DSCN{n:04d}.JPG", "P10{n:05d}.JPG", "image{m}.png",
              "photo_{n}.jpeg", "{n}.jpg", "Untitled-{m}.jpg", "IMG-2019{m:02d}{m:02d}-WA{n:04d}.jpg",
              "screenshot_{n}.png"]
NEAR_DUP_EDITS = ["{b}", "{b} - {n}", "{b} ({n})", "{b} | {n}", "{b} #{n}", "{b}!", "{lb}"]
N_NEAR_DUP_BASES = 5
# ImageNet sample synsets under a CIFAR-10 class's WordNet 3.0 synset (hypernym closure, computed by
# ood_map_from_wordnet() where WordNet is installed; frozen here so the experiment runs without it)
CIFAR_SYNSETS = {"airplane": "airplane", "automobile": "car", "bird": "bird", "cat": "cat", "deer": "deer",
                 "dog": "dog", "frog": "frog", "horse": "horse", "ship": "ship", "truck": "truck"}
OOD_MAP = {
    "n01530575": "bird", "n01601694": "bird", "n01641577": "frog", "n01795545": "bird", "n01820546": "bird",
    "n01860187": "bird", "n02007558": "bird", "n02027492": "bird", "n02088094": "dog", "n02090721": "dog",
    "n02093428": "dog", "n02095889": "dog", "n02097474": "dog", "n02100236": "dog", "n02102480": "dog",
    "n02105855": "dog", "n02107908": "dog", "n02110185": "dog", "n02112137": "dog", "n03095699": "ship",
}
log = logging.getLogger("dfn_evidence")
_h, _u = dfn._h, dfn._u


# ---------------------------------------------------------------- noise
def alt_texts() -> list[str]:
    """Real LAION alt texts (img2dataset tests), unique, none naming a CIFAR-10 class, in file order."""
    seen, out = set(), []
    for t in pq.read_table(ALT_TEXTS, columns=["TEXT"]).column("TEXT").to_pylist():
        t = (t or "").strip()
        words = {w.strip(".,:;!?()[]'\"-|#").lower() for w in t.split()}
        if len(t) >= 5 and t not in seen and not words & CLASS_WORDS:
            seen.add(t)
            out.append(t)
    return out


def web_caption(path: Path, y: int, seed: int, rate: float, alts: list[str]) -> tuple[str, str]:
    """(caption, kind): clean (a dfn_loop template) with probability 1 - rate, else one of
    NOISE_KINDS in equal parts; all draws from (seed, class/file)."""
    key = f"{CLASSES[y]}/{path.name}"
    r = _u(seed, "corrupt", key)
    if r >= rate:
        return dfn.caption_for(path, y, seed, 0.0, [])[0], "clean"
    kind = NOISE_KINDS[min(int(r / rate * len(NOISE_KINDS)), len(NOISE_KINDS) - 1)]
    u = _u(seed, kind, key)
    n = int(_u(seed, "n", key) * 10000)
    if kind == "alt_text":
        return alts[int(u * len(alts))], kind
    if kind == "hard_negative":
        other = CLASSES[(y + 1 + int(u * 9)) % 10]
        opts = HARD_NEGATIVES[other]
        return opts[int(_u(seed, "hn", key) * len(opts))], kind
    if kind == "file_name":
        return FILE_NAMES[int(u * len(FILE_NAMES))].format(n=n, m=1 + n % 12), kind
    bases = [alts[int(_u(seed, "ndbase", i) * len(alts))] for i in range(N_NEAR_DUP_BASES)]
    b = bases[int(u * N_NEAR_DUP_BASES)]
    edit = NEAR_DUP_EDITS[int(_u(seed, "ndedit", key) * len(NEAR_DUP_EDITS))]
    return edit.format(b=b, lb=b.lower(), n=n % 100), kind


def build_pool(work: Path, pool, seed: int, rates: list[float]) -> tuple[Path, dict[float, dict]]:
    """Images once under opaque names (as dfn_loop.py); one caption table per noise rate."""
    web = work / "web"
    web.mkdir(parents=True, exist_ok=True)
    alts = alt_texts()
    truths = {}
    for path, y in pool:
        shutil.copyfile(path, web / f"{_h('img', CLASSES[y], path.name)}.jpg")
    for rate in rates:
        rows = []
        for path, y in pool:
            caption, kind = web_caption(path, y, seed, rate, alts)
            rows.append({"name": f"{_h('img', CLASSES[y], path.name)}.jpg", "caption": caption, "kind": kind,
                         "label": y})
        pq.write_table(pa.Table.from_pylist(rows), work / f"pool_truth_r{rate}.parquet")
        truths[rate] = {r["name"]: r for r in rows}
    return web, truths


# ---------------------------------------------------------------- metadata, OOD map
def _wordnet_nouns(wordnet_dir: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    """offset -> hypernym offsets (@, @i) and lemma -> first-sense offset, from WordNet's data/index.noun."""
    hyper: dict[str, list[str]] = {}
    with open(Path(wordnet_dir) / "data.noun", encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):
                continue
            p = line.split(" | ")[0].split()
            w_cnt = int(p[3], 16)
            i = 4 + 2 * w_cnt
            n_ptr = int(p[i])
            ptrs = p[i + 1:i + 1 + 4 * n_ptr]
            hyper[p[0]] = [ptrs[j + 1] for j in range(0, len(ptrs), 4) if ptrs[j] in ("@", "@i")]
    first = {}
    with open(Path(wordnet_dir) / "index.noun", encoding="utf-8") as f:
        for line in f:
            if not line.startswith("  "):
                p = line.split()
                first[p[0]] = p[-int(p[2])]
    return hyper, first


def ood_map_from_wordnet(wordnet_dir: str = WORDNET_DIR) -> dict[str, str]:
    """ImageNet sample wnid -> CIFAR-10 class whose WordNet synset (first sense of CIFAR_SYNSETS)
    is in the wnid's hypernym closure."""
    hyper, first = _wordnet_nouns(wordnet_dir)
    target = {first[w]: c for c, w in CIFAR_SYNSETS.items()}
    out = {}
    for f in sorted(IMAGENET.glob("n*.JPEG")):
        wnid = f.name.split("_")[0]
        todo, seen = [wnid[1:]], set()
        while todo:
            o = todo.pop()
            if o in target:
                out[wnid] = target[o]
                break
            if o not in seen:
                seen.add(o)
                todo += hyper.get(o, [])
    return out


def ood_images() -> list[tuple[Path, int]]:
    return [(f, CLASSES.index(OOD_MAP[f.name.split("_")[0]])) for f in sorted(IMAGENET.glob("n*.JPEG"))
            if f.name.split("_")[0] in OOD_MAP]


def write_metadata(path: Path) -> str:
    """MetaCLIP-style metadata: WordNet 3.0 noun/verb/adj/adv lemmas where WordNet is installed,
    else every class name of the 26 datasets in openai-clip-prompts.  Returns the source's name."""
    from clipcurate.balancing.entries import MetadataError
    from clipcurate.balancing.metadata import wordnet_lemmas
    try:
        entries, source = wordnet_lemmas(WORDNET_DIR), "wordnet"
    except (OSError, MetadataError):
        md = parse_prompts_md(dfn.PROMPTS_MD.read_text(encoding="utf-8"))
        entries, source = sorted({c.lower() for ds in md.values() for c in ds["classes"]}), "clip_prompts_classes"
    path.write_text(json.dumps(sorted(set(entries))))
    return source


# ---------------------------------------------------------------- arms
def arm_config(out: Path, cands: Path, seed: int, model: str, *, text: bool, metadata: Path | None, t: int,
               ckpt: str | None, keep: float):
    cfg = dfn.pipeline_config(out, cands, seed, ckpt, keep, model)
    cfg.filter.enabled = text
    cfg.filter.languages = ["en"] if text else None
    cfg.balance.enabled = metadata is not None
    if metadata is not None:
        cfg.balance.metadata = str(metadata)
        cfg.balance.t = t
    return cfg


def removal(run_dir: Path, truth: dict[str, dict]) -> dict:
    """Per caption kind: pool count, kept count, removed fraction, and the removing stages' counts."""
    name = lambda r: r["url"].rsplit("/", 1)[-1]  # noqa: E731
    kept = dfn._rows(run_dir, "parquet")
    rej = dfn._rows(run_dir, "rejects")
    out = {}
    for kind in ("clean",) + NOISE_KINDS:
        n = sum(1 for r in truth.values() if r["kind"] == kind)
        k = sum(1 for r in kept if truth[name(r)]["kind"] == kind)
        stages: dict[str, int] = {}
        for r in rej:
            if truth[name(r)]["kind"] == kind:
                s = f"{r['stage']}:{r['reason']}"
                stages[s] = stages.get(s, 0) + 1
        out[kind] = {"pool": n, "kept": k, "removed_fraction": (n - k) / n if n else None,
                     "by_stage": dict(sorted(stages.items()))}
    out["all"] = {"pool": len(truth), "kept": len(kept),
                  "clean_fraction_kept": sum(1 for r in kept if truth[name(r)]["kind"] == "clean") / max(1, len(kept))}
    return out


# ---------------------------------------------------------------- evaluation
def evaluate(model: str, checkpoint: str, heldout, ood, seed: int, c_values: list[float] | None = None) -> dict:
    """CIFAR-10 held-out zero-shot + linear probe (exactly as dfn_loop.evaluate), plus on the OOD
    ImageNet images: zero-shot over the 10 classes and the probe fit on the whole CIFAR-10 held-out split."""
    loaded = load_clip(model, checkpoint=checkpoint)
    templates = load_list(str(dfn.EVAL_TEMPLATES), "templates", "cifar10")
    clf = build_classifier(loaded.model, loaded.tokenizer, CLASSES, templates)
    c_values = c_values or np.logspace(-6, 4, 11).tolist()
    out = {}
    feats = {}
    for name, items in (("", heldout), ("ood_", ood)):
        paths, labels = [str(p) for p, _ in items], [y for _, y in items]
        zs = zeroshot_classify(encode_images(loaded.model, loaded.preprocess, paths), clf, CLASSES, labels)
        feats[name] = encode_images(loaded.model, loaded.preprocess, paths, normalize=False)
        out |= {f"{name}zeroshot_top1": zs["top1"], f"{name}zeroshot_top5": zs["top5"], f"n_{name.rstrip('_') or 'eval'}": len(paths)}
    labels = [y for _, y in heldout]
    tr, te = split_balanced(labels, 0.5, seed)
    y = np.array(labels)
    lp = linear_probe(feats[""][tr], y[tr], feats[""][te], y[te], c_values=c_values, seed=seed)
    lp_ood = linear_probe(feats[""], labels, feats["ood_"], [y for _, y in ood], c_values=c_values, seed=seed)
    return out | {"linear_probe_top1": lp["top1"], "linear_probe_best_C": lp["best_C"],
                  "ood_linear_probe_top1": lp_ood["top1"]}


def pair_scores(loaded, images: list[Path], texts_list: list[list[str]]) -> list[np.ndarray]:
    """Cosine similarity of each image with the text at the same position, for each list of texts."""
    img = torch.nn.functional.normalize(torch.from_numpy(
        encode_images(loaded.model, loaded.preprocess, [str(p) for p in images])).float(), dim=-1)
    out = []
    with torch.no_grad():
        for texts in texts_list:
            txt = torch.nn.functional.normalize(loaded.model.encode_text(loaded.tokenizer(texts)).float(), dim=-1)
            out.append((img * txt).sum(-1).numpy())
    return out


def scoring_sanity(model: str, checkpoint: str, seed: int) -> dict:
    """True caption vs wrong caption: Open Images photos vs a seeded derangement of their titles,
    and the CLIPScore example's good vs bad captions."""
    with open(OPEN_IMAGES / "credits.csv", newline="", encoding="utf-8") as f:
        rows = sorted((r for r in csv.DictReader(f) if (OPEN_IMAGES / f"{r['ImageID']}.jpg").exists()),
                      key=lambda r: r["ImageID"])
    imgs = [OPEN_IMAGES / f"{r['ImageID']}.jpg" for r in rows]
    titles = [r["Title"] for r in rows]
    perm = list(range(len(rows)))
    rng = random.Random(_h(seed, "derange"))
    while any(i == p for i, p in enumerate(perm)):
        rng.shuffle(perm)
    loaded = load_clip(model, checkpoint=checkpoint)
    s_true, s_wrong = pair_scores(loaded, imgs, [titles, [titles[p] for p in perm]])
    good = json.loads((CLIPSCORE / "good_captions.json").read_text())
    bad = json.loads((CLIPSCORE / "bad_captions.json").read_text())
    keys = sorted(good)
    cs_imgs = [CLIPSCORE / "images" / f"{k}.jpg" for k in keys]
    g, b = pair_scores(loaded, cs_imgs, [[good[k] for k in keys], [bad[k] for k in keys]])
    return {"open_images_n": len(rows), "open_images_true_wins": int((s_true > s_wrong).sum()),
            "open_images_true_win_rate": float((s_true > s_wrong).mean()),
            "open_images_mean_margin": float((s_true - s_wrong).mean()),
            "clipscore_n": len(keys), "clipscore_good_wins": int((g > b).sum()),
            "clipscore_margins": [float(x) for x in g - b]}


# ---------------------------------------------------------------- main
ARMS = ["unfiltered", "unfiltered+clean", "clean_only", "text+balance", "clipscore", "dfn", "text+balance+dfn"]
PIPELINE_ARMS = ["unfiltered", "text+balance", "clipscore", "dfn", "text+balance+dfn"]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="dfn_evidence_work")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="dfn-vit-tiny")
    ap.add_argument("--eval-per-class", type=int, default=100)
    ap.add_argument("--clean-per-class", type=int, default=300)
    ap.add_argument("--pool-per-class", type=int, default=300)
    ap.add_argument("--rates", default="0.25,0.5,0.75", help="noise rates (removal table at each)")
    ap.add_argument("--train-rate", type=float, default=0.5, help="the rate whose arms are all trained and evaluated")
    ap.add_argument("--keep", type=float, default=0.5, help="top fraction kept by the CLIP-score and DFN filters")
    ap.add_argument("--balance-t", type=int, default=100, help="MetaCLIP t for the balancing arms")
    ap.add_argument("--filter-steps", type=int, default=200)
    ap.add_argument("--steps", type=int, default=120, help="steps of every arm's training (equal samples seen)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--probe-c", default="", help="comma list of linear-probe C values (default 1e-6..1e4, 11 "
                    "log-spaced, as dfn_loop.py; the CI test uses one value)")
    ap.add_argument("--port", type=int, default=None, help="loopback port (default 18800 + seed); URLs, hence "
                    "uids and training order, include it")
    ap.add_argument("--beam-args", default="")
    args = ap.parse_args(argv)
    port = args.port if args.port is not None else 18800 + args.seed
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", force=True)
    log.setLevel(logging.INFO)
    torch.set_num_threads(args.threads)
    rates = [float(r) for r in args.rates.split(",")]
    c_values = [float(c) for c in args.probe_c.split(",") if c] or None
    if args.train_rate not in rates:
        rates.append(args.train_rate)
    work = Path(args.work).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    timings: dict[str, float] = {}
    t_start = time.perf_counter()

    def lap(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 1)
        log.info("%s done in %.1f s", name, timings[name])

    def train(name: str, shards: str, steps: int) -> dict:
        t0 = time.perf_counter()
        tr = dfn.train_clip(args.model, Path(shards) if "," not in shards else shards, work / f"clip_{name}", steps,
                            args.batch_size, args.seed, args.lr, args.threads)
        lap(f"train_{name}", t0)
        return tr

    parts = dfn.split_cifar(args.eval_per_class, args.clean_per_class, args.pool_per_class)
    ood = ood_images()
    web, truths = build_pool(work, parts["pool"], args.seed, rates)
    clean = dfn.write_clean_shards(work / "clean_shards", parts["clean"], args.seed)
    meta = work / "metadata.json"
    meta_source = write_metadata(meta)
    filt = train("filter_net", str(clean), args.filter_steps)
    ckpt_dfn = filt.pop("final_checkpoint")
    results: dict = {"seed": args.seed, "port": port, "metadata_source": meta_source, "ood_map": OOD_MAP,
                     "n_ood": len(ood), "args": {k: v for k, v in vars(args).items() if k != "work"},
                     "filter_network": filt, "rates": {}}
    beam_args = args.beam_args.split()
    with serve_directory(web, port=port) as base:
        for rate in sorted(rates):
            truth = truths[rate]
            rr: dict = {"pool_kinds": {k: sum(1 for r in truth.values() if r["kind"] == k)
                                       for k in ("clean",) + NOISE_KINDS}, "removal": {}, "shard_rows": {}}
            cands = work / f"candidates_r{rate}.parquet"
            names = sorted(truth)
            pq.write_table(pa.table({"url": [f"{base}/{n}" for n in names],
                                     "caption": [truth[n]["caption"] for n in names]}), cands)
            ckpts: dict[str, str] = {"dfn": ckpt_dfn}
            runs: dict[str, Path] = {}
            trained: dict[str, dict] = {}
            for arm in PIPELINE_ARMS:
                if arm == "clipscore":  # DataComp's CLIP-score baseline: a CLIP trained on the unfiltered pool
                    trained["unfiltered"] = train(f"unfiltered_r{rate}", str(runs["unfiltered"]), args.steps)
                    ckpts["clipscore"] = trained["unfiltered"].pop("final_checkpoint")
                score = {"clipscore": ckpts.get("clipscore"), "dfn": ckpt_dfn, "text+balance+dfn": ckpt_dfn}.get(arm)
                text = arm.startswith("text+balance")
                t0 = time.perf_counter()
                runs[arm] = work / f"run_{arm.replace('+', '_')}_r{rate}"
                m = dfn.run_pipeline(arm_config(runs[arm], cands, args.seed, args.model, text=text,
                                                metadata=meta if text else None, t=args.balance_t, ckpt=score,
                                                keep=args.keep), beam_args)
                lap(f"pipeline_{arm}_r{rate}", t0)
                rr["shard_rows"][arm] = m["total_samples"]
                if arm != "unfiltered":
                    rr["removal"][arm] = removal(runs[arm], truth)
            if rate == args.train_rate:
                rr["arms"] = {}
                shards = {"unfiltered+clean": f"{runs['unfiltered']},{clean}", "clean_only": str(clean)} | {
                    a: str(runs[a]) for a in PIPELINE_ARMS if a != "unfiltered"}
                for arm in ARMS:
                    tr = trained["unfiltered"] if arm == "unfiltered" else train(f"{arm}_r{rate}", shards[arm], args.steps)
                    ck = ckpts["clipscore"] if arm == "unfiltered" else tr.pop("final_checkpoint")
                    t0 = time.perf_counter()
                    rr["arms"][arm] = {"train": tr, "eval": evaluate(args.model, ck, parts["eval"], ood, args.seed, c_values)}
                    lap(f"eval_{arm}", t0)
                rr["scoring_sanity"] = {"dfn": scoring_sanity(args.model, ckpt_dfn, args.seed),
                                        "clipscore": scoring_sanity(args.model, ckpts["clipscore"], args.seed)}
                t0 = time.perf_counter()
                rr["filter_network_eval"] = evaluate(args.model, ckpt_dfn, parts["eval"], ood, args.seed, c_values)
                lap("eval_filter_network", t0)
            results["rates"][str(rate)] = rr
    for tr in [results["filter_network"]] + [a["train"] for r in results["rates"].values() for a in r.get("arms", {}).values()]:
        for k in ("seconds", "samples_per_s"):
            tr.pop(k, None)  # machine-dependent: kept in timings only
    (work / "evidence.json").write_text(json.dumps(results, indent=2, sort_keys=True))
    timings["total"] = round(time.perf_counter() - t_start, 1)
    (work / "timings.json").write_text(json.dumps(timings, indent=2))
    print(summary_text(results))
    return results


def summary_text(r: dict) -> str:
    lines = [f"seed {r['seed']}  (metadata: {r['metadata_source']}, OOD images: {r['n_ood']})", "",
             "removed fraction per caption kind, per filter arm (rate = noise fraction of the pool):",
             f"{'rate':>5} {'arm':18}" + "".join(f"{k:>15}" for k in ("clean",) + NOISE_KINDS) + f"{'kept':>7}{'clean kept':>11}"]
    for rate, rr in sorted(r["rates"].items()):
        for arm in [a for a in PIPELINE_ARMS if a in rr["removal"]]:
            rem = rr["removal"][arm]
            lines.append(f"{rate:>5} {arm:18}" + "".join(f"{rem[k]['removed_fraction']:>15.2f}" for k in ("clean",) + NOISE_KINDS)
                         + f"{rem['all']['kept']:>7}{rem['all']['clean_fraction_kept']:>11.2f}")
    for rate, rr in sorted(r["rates"].items()):
        if "arms" not in rr:
            continue
        lines += ["", f"arms at noise rate {rate}, equal samples seen (top-1 %):",
                  f"{'arm':18}{'samples':>8}{'cifar zs':>9}{'cifar lp':>9}{'ood zs':>8}{'ood lp':>8}"]
        for arm, a in [(a, rr["arms"][a]) for a in ARMS] + [("filter net", {"train": r["filter_network"], "eval": rr["filter_network_eval"]})]:
            e = a["eval"]
            lines.append(f"{arm:18}{a['train']['samples_seen']:>8}{100 * e['zeroshot_top1']:>9.1f}"
                         f"{100 * e['linear_probe_top1']:>9.1f}{100 * e['ood_zeroshot_top1']:>8.1f}"
                         f"{100 * e['ood_linear_probe_top1']:>8.1f}")
        for net, s in rr["scoring_sanity"].items():
            lines.append(f"scoring sanity ({net}): Open Images true title beats shuffled {s['open_images_true_wins']}/"
                         f"{s['open_images_n']}; CLIPScore good beats bad {s['clipscore_good_wins']}/{s['clipscore_n']}")
    return "\n".join(lines)


def aggregate(paths: list[str]) -> str:
    """Markdown tables over several seeds' evidence.json: mean and sample sd per figure."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    seeds = [r["seed"] for r in runs]
    ms = lambda xs: f"{np.mean(xs):.1f} ± {np.std(xs, ddof=1):.1f}" if len(xs) > 1 else f"{xs[0]:.1f}"  # noqa: E731
    kinds = ("clean",) + NOISE_KINDS
    out = [f"Seeds {seeds} (mean ± sample sd over seeds).", "",
           "Removed fraction (%) per caption kind and filter arm:", "",
           "| noise rate | arm | " + " | ".join(kinds) + " | rows kept | clean share of kept |",
           "| ---: | --- |" + " ---: |" * (len(kinds) + 2)]
    for rate in sorted(runs[0]["rates"]):
        for arm in [a for a in PIPELINE_ARMS if a in runs[0]["rates"][rate]["removal"]]:
            rem = [r["rates"][rate]["removal"][arm] for r in runs]
            out.append(f"| {rate} | {arm} | " + " | ".join(ms([100 * x[k]["removed_fraction"] for x in rem]) for k in kinds)
                       + f" | {ms([x['all']['kept'] for x in rem])} | {ms([100 * x['all']['clean_fraction_kept'] for x in rem])} |")
    for rate in sorted(runs[0]["rates"]):
        if "arms" not in runs[0]["rates"][rate]:
            continue
        rr = [r["rates"][rate] for r in runs]
        out += ["", f"Arms at noise rate {rate}, equal samples seen "
                f"({rr[0]['arms']['unfiltered']['train']['samples_seen']:,} each), top-1 (%):", "",
                "| arm | training rows | CIFAR-10 zero-shot | CIFAR-10 linear probe | ImageNet OOD zero-shot | "
                "ImageNet OOD linear probe | zero-shot vs unfiltered (points) |", "| --- |" + " ---: |" * 6]
        for arm in ARMS + ["filter net"]:
            ev_ = [x["filter_network_eval"] if arm == "filter net" else x["arms"][arm]["eval"] for x in rr]
            rows = ["(clean subset)" if arm in ("filter net", "clean_only") else
                    ("+".join([str(x["shard_rows"]["unfiltered"]), "clean"]) if arm == "unfiltered+clean"
                     else str(x["shard_rows"][arm])) for x in rr]
            d = [100 * (e["zeroshot_top1"] - x["arms"]["unfiltered"]["eval"]["zeroshot_top1"]) for e, x in zip(ev_, rr)]
            out.append(f"| {arm} | {' / '.join(dict.fromkeys(rows))} | " + " | ".join(
                ms([100 * e[k] for e in ev_]) for k in ("zeroshot_top1", "linear_probe_top1", "ood_zeroshot_top1",
                                                       "ood_linear_probe_top1")) + f" | {ms(d)} |")
        out += ["", "Scoring sanity (true caption scores higher than the wrong one), per seed:", "",
                "| network | Open Images title vs shuffled title | CLIPScore good vs bad caption |", "| --- | --- | --- |"]
        for net in rr[0]["scoring_sanity"]:
            s = [x["scoring_sanity"][net] for x in rr]
            out.append(f"| {net} | " + ", ".join(f"{x['open_images_true_wins']}/{x['open_images_n']}" for x in s)
                       + " | " + ", ".join(f"{x['clipscore_good_wins']}/{x['clipscore_n']}" for x in s) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1:2] == ["aggregate"]:
        print(aggregate(sys.argv[2:]))
    else:
        main()
