"""Dedupe stages in Beam on labelled near-duplicates built from real captions and images.

One in-process pipeline runs every stage on its own input (module fixture); one
multi-process run checks that components do not depend on worker count.
"""
from __future__ import annotations

import glob
import itertools
import json
from collections import defaultdict
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from PIL import Image

from clipcurate.dedupe import minhash
from clipcurate.dedupe.config import DedupeConfig
from clipcurate.dedupe.decontam import Decontaminate
from clipcurate.dedupe.exact import ExactContentDedupe, ExactUrlDedupe
from clipcurate.dedupe.near import CaptionNearDedupe, NearDedupe
from clipcurate.dedupe.synth import CAPTION_EDITS, IMAGE_EDITS, edit_caption, edit_image, encode_jpeg, vocabulary
from clipcurate.schemas.uid import make_uid
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
CAPTIONS = pq.read_table(DATA / "img2dataset-tests" / "test_10000.parquet").to_pylist()
CIFAR = DATA / "cifar10-test-jpeg" / "test"
IMAGENET = DATA / "imagenet-sample-images-subset"
SEED = 7


def _rec(url: str, caption: str, group: str, **kw) -> dict:
    return dict(uid=make_uid(url, caption), url=url, caption=caption, group=group, **kw)


def _distinct_bases(rows, n, min_words=5, max_jaccard=0.4):
    """n real (url, caption) rows with >= min_words words whose captions are pairwise below
    max_jaccard (exact, char 4-grams): real near-duplicate captions are left out of the negatives."""
    chosen, sizes, postings = [], [], defaultdict(list)
    for r in rows:
        norm = minhash.normalize_caption(r["TEXT"])
        if len(norm.split()) < min_words:
            continue
        s = set(minhash.shingles(norm, "char", 4))
        overlap = defaultdict(int)
        for sh in s:
            for j in postings[sh]:
                overlap[j] += 1
        if all(o / (len(s) + sizes[j] - o) < max_jaccard for j, o in overlap.items()):
            for sh in s:
                postings[sh].append(len(chosen))
            chosen.append(r)
            sizes.append(len(s))
            if len(chosen) == n:
                break
    return chosen


def caption_set():
    """~1,000 records: 600 distinct real captions, 300 of them with 1-2 edited copies."""
    bases = _distinct_bases(CAPTIONS, 600)
    vocab = vocabulary([r["TEXT"] for r in CAPTIONS[:2000]])
    recs = []
    for i, r in enumerate(bases):
        g = f"c{i}"
        recs.append(_rec(r["URL"], r["TEXT"], g))
        for v in range(1 + i % 2 if i < 300 else 0):
            edit = CAPTION_EDITS[(i + v) % 3]
            cap = edit_caption(r["TEXT"], edit, vocab, SEED, f"{g}/{v}")
            recs.append(_rec(f"{r['URL']}?copy={v}", cap, g, edit=edit))
    return recs


def image_set():
    """Real photos with edited copies (image edit + caption edit), and hard negatives."""
    paths = sorted(glob.glob(str(IMAGENET / "*.JPEG")))[:41] + sorted(glob.glob(str(DATA / "open-images-cc-test-images" / "*.jpg")))
    bases = _distinct_bases(CAPTIONS[3000:], len(paths) + 20)
    vocab = vocabulary([r["TEXT"] for r in CAPTIONS[:2000]])
    recs = []
    for i, p in enumerate(paths):
        img = Image.open(p).convert("RGB")
        img.thumbnail((320, 320))
        g, base = f"i{i}", bases[i]
        recs.append(_rec(base["URL"], base["TEXT"], g, image=encode_jpeg(img)))
        if i % 2 == 0:
            for v, edit in enumerate(IMAGE_EDITS):
                cap = edit_caption(base["TEXT"], CAPTION_EDITS[(i + v) % 3], vocab, SEED, f"{g}/{v}")
                recs.append(_rec(f"{base['URL']}?v={v}", cap, g, image=edit_image(img, edit), edit=edit))
        elif i % 4 == 1:   # same image (resized), unrelated caption: a dup by image only
            other = bases[len(paths) + i % 20]
            recs.append(_rec(f"{other['URL']}?img={i}", other["TEXT"], f"{g}/img-only", image=edit_image(img, "resize"),
                             image_group=g))
        elif i % 4 == 3:   # same caption, an unrelated CIFAR image: a dup by caption only
            cifar = Image.open(CIFAR / "ship" / f"{i:04d}.jpg").resize((128, 128))
            recs.append(_rec(base["URL"] + "?other", base["TEXT"], f"{g}/cap-only", image=encode_jpeg(cifar)))
    return recs


def decontam_pool():
    """Training pool: 23 open-images photos (clean), 5 CIFAR-10 test images and 3 ImageNet
    samples re-encoded (contaminated)."""
    recs = []
    for i, p in enumerate(sorted(glob.glob(str(DATA / "open-images-cc-test-images" / "*.jpg")))):
        recs.append(_rec(f"http://a.example/{i}.jpg", f"photo {i}", "clean", image=Path(p).read_bytes()))
    for cls, n in [("cat", 12), ("ship", 345), ("truck", 7), ("frog", 999), ("airplane", 0)]:
        img = Image.open(CIFAR / cls / f"{n:04d}.jpg").resize((128, 128), Image.BICUBIC)
        recs.append(_rec(f"http://b.example/{cls}{n}.jpg", f"a {cls}", "cifar10", image=encode_jpeg(img, 80)))
    for p in sorted(glob.glob(str(IMAGENET / "*.JPEG")))[::40]:
        img = Image.open(p).convert("RGB")
        recs.append(_rec(f"http://c.example/{Path(p).stem}.jpg", "an animal", "imagenet",
                         image=encode_jpeg(img.resize((img.width // 2, img.height // 2)), 70)))
    return recs


def exact_set():
    rows = CAPTIONS[:200]
    recs = [_rec(r["URL"], r["TEXT"], f"u{i}", sha256=f"sha{i}") for i, r in enumerate(rows)]
    for i, r in enumerate(rows[:30]):   # same URL up to normalisation, other caption
        url = r["URL"].replace("http://", "HTTP://", 1).replace("https://", "HTTPS://", 1) + "#frag"
        recs.append(_rec(url, r["TEXT"] + " (copy)", f"u{i}", sha256=f"other{i}"))
    for i in range(20):                 # same bytes, another URL; half carry a higher score
        recs.append(_rec(f"http://mirror.example/{i}.jpg", f"mirror {i}", f"u{i}", sha256=f"sha{i}",
                         clip_score=0.9 if i % 2 else None))
    return recs


STAGES = {
    "url": (exact_set, lambda: ExactUrlDedupe(keep_rejects=True)),
    "content": (exact_set, lambda: ExactContentDedupe(keep_rejects=True)),
    "caption": (caption_set, lambda: CaptionNearDedupe(DedupeConfig(cc_rounds=4), SEED, keep_rejects=True)),
    "both": (image_set, lambda: NearDedupe(DedupeConfig(mode="both", cc_rounds=4), SEED, keep_rejects=True)),
    "image": (image_set, lambda: NearDedupe(DedupeConfig(mode="image", cc_rounds=4), SEED, keep_rejects=True)),
    "decontam": (decontam_pool, lambda: Decontaminate(
        DedupeConfig(eval_sets=[f"cifar10={CIFAR}", f"imagenet={IMAGENET}"]), keep_rejects=True)),
}


def run_stages(names, options, outdir: Path):
    """Run the named stages in one pipeline; write kept/rejects/counts/stats as JSON lines."""
    inputs = {}
    with beam.Pipeline(options=PipelineOptions(options)) as p:
        for name in names:
            make_input, make_stage = STAGES[name]
            recs = inputs.setdefault(make_input, make_input())
            out = p | f"{name}/In" >> beam.Create(recs, reshuffle=False) | f"{name}/Stage" >> make_stage()
            for kind in ("kept", "rejects", "counts", "stats"):
                if kind in out:
                    (out[kind]
                     | f"{name}/{kind}/Json" >> beam.Map(
                         lambda x: json.dumps({k: v for k, v in x.items() if k != "image"} if isinstance(x, dict)
                                              else x, sort_keys=True, default=str))
                     | f"{name}/{kind}/Write" >> beam.io.WriteToText(str(outdir / f"{name}.{kind}")))
    result = {}
    for name in names:
        result[name] = {kind: [json.loads(line) for f in sorted(outdir.glob(f"{name}.{kind}*"))
                               for line in f.read_text().splitlines()]
                        for kind in ("kept", "rejects", "counts", "stats")}
    return result, inputs


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return run_stages(list(STAGES), ["--runner=FnApiRunner"], tmp_path_factory.mktemp("dedupe"))


def _counts(res):
    totals = defaultdict(int)
    for (stage, key), n in res["counts"]:
        totals[key] += n
    return stage, dict(totals)


def _pairs(clusters):
    return {tuple(sorted(p)) for members in clusters.values() for p in itertools.combinations(sorted(members), 2)}


def precision_recall(records, res, truth_key):
    """Pairwise precision/recall of the predicted components against the labelled groups."""
    keeper = {r["uid"]: r["duplicate_of"] for r in res["rejects"]}
    pred, true = defaultdict(set), defaultdict(set)
    for r in records:
        pred[keeper.get(r["uid"], r["uid"])].add(r["uid"])
        true[truth_key(r)].add(r["uid"])
    p, t = _pairs(pred), _pairs(true)
    return len(p & t) / max(1, len(p)), len(p & t) / max(1, len(t)), len(t)


def _stat(res, name):
    return dict(map(tuple, res["stats"]))[name]


def test_counts_balance_and_kept_plus_dropped(results):
    res, inputs = results
    for name, r in res.items():
        stage, c = _counts(r)
        dropped = sum(v for k, v in c.items() if k.startswith("dropped:"))
        assert c["in"] == c["kept"] + dropped == len(inputs[STAGES[name][0]]), name
        assert c["kept"] == len(r["kept"]) and dropped == len(r["rejects"]), name


def test_exact_url_and_content(results):
    res, _ = results
    url = res["url"]
    assert {r["reason"] for r in url["rejects"]} == {"dup_url"} and len(url["rejects"]) == 30
    assert all(r["uid"] > r["duplicate_of"] for r in url["rejects"])   # the smallest uid is kept
    content = res["content"]
    assert len(content["rejects"]) == 20
    kept = {r["uid"]: r for r in content["kept"]}
    for r in content["rejects"]:
        assert kept[r["duplicate_of"]]["sha256"] == r["sha256"]
        if r.get("clip_score") is None and kept[r["duplicate_of"]].get("clip_score") is None:
            assert r["uid"] > r["duplicate_of"]
    scored_winners = [r for r in content["kept"] if r.get("clip_score") == 0.9]
    assert len(scored_winners) == 10   # the highest score wins over a smaller uid


def test_caption_near_dedupe_precision_recall(results):
    res, inputs = results
    precision, recall, n_true = precision_recall(inputs[caption_set], res["caption"], lambda r: r["group"])
    print(f"caption near-dedupe: precision {precision:.4f} recall {recall:.4f} over {n_true} true pairs")
    assert n_true >= 450
    assert recall >= 0.95 and precision >= 0.99, (precision, recall)
    hist = _stat(res["caption"], "near_dup_caption_clusters")
    assert sum(int(k) * v for k, v in hist.items()) - sum(hist.values()) == len(res["caption"]["rejects"])
    assert _stat(res["caption"], "near_dup_caption_clusters_unconverged") == 0


def test_image_and_caption_near_dedupe_both(results):
    res, inputs = results
    recs = inputs[image_set]
    precision, recall, n_true = precision_recall(recs, res["both"], lambda r: r["group"])
    print(f"near-dedupe mode both: precision {precision:.4f} recall {recall:.4f} over {n_true} true pairs")
    assert n_true >= 200
    assert recall >= 0.95 and precision >= 0.99, (precision, recall)
    found = {r["edit"] for r in res["both"]["rejects"] if "edit" in r}
    assert found == set(IMAGE_EDITS)      # every edit kind is caught
    assert {r["reason"] for r in res["both"]["rejects"]} == {"near_dup"}
    assert all(len(r["phash"]) == 16 for r in res["both"]["kept"])


def _image_truth(rec):
    """Mode image: a copy of a photo with an unrelated caption is in the photo's group."""
    return rec["image_group"] if "image_group" in rec else rec["group"]


def test_image_only_mode(results):
    res, inputs = results
    recs = inputs[image_set]
    precision, recall, n_true = precision_recall(recs, res["image"], _image_truth)
    print(f"near-dedupe mode image: precision {precision:.4f} recall {recall:.4f} over {n_true} true pairs")
    assert recall >= 0.95 and precision >= 0.99, (precision, recall)
    assert {r["reason"] for r in res["image"]["rejects"]} == {"near_dup_image"}


def test_decontamination_removes_eval_images(results):
    res, _ = results
    removed = {r["group"]: [] for r in res["decontam"]["rejects"]}
    for r in res["decontam"]["rejects"]:
        removed[r["group"]].append(r["eval_set"])
    assert sorted(removed) == ["cifar10", "imagenet"]
    assert removed["cifar10"] == ["cifar10"] * 5 and removed["imagenet"] == ["imagenet"] * 3
    stats = _stat(res["decontam"], "decontamination")
    assert stats == {"cifar10": {"images": 10000, "removed": 5}, "imagenet": {"images": 100, "removed": 3}}
    assert {r["reason"] for r in res["decontam"]["rejects"]} == {"eval_contamination"}


def test_components_same_across_worker_counts_and_runs(results, tmp_path):
    res, _ = results
    multi, _ = run_stages(["caption"], ["--runner=FnApiRunner", "--direct_num_workers=2",
                                        "--direct_running_mode=multi_processing"], tmp_path)
    key = lambda r: sorted((x["uid"], x.get("duplicate_of")) for x in r)  # noqa: E731
    assert key(multi["caption"]["rejects"]) == key(res["caption"]["rejects"])
    assert sorted(x["uid"] for x in multi["caption"]["kept"]) == sorted(x["uid"] for x in res["caption"]["kept"])
    assert _stat(multi["caption"], "near_dup_caption_clusters") == _stat(res["caption"], "near_dup_caption_clusters")
