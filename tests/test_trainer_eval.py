"""Zero-shot (prompt ensembles from the shared template files) and linear probe."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from clipcurate.scoring.model import load_clip
from clipcurate.trainer import cli
from clipcurate.trainer.images import encode_images, image_folder, split_balanced
from clipcurate.trainer.linear_probe import linear_probe
from clipcurate.trainer.prompts import fill, load_list, parse_prompts_md
from clipcurate.trainer.zeroshot import build_classifier, topk_accuracy, zeroshot_classify
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
BENCH = DATA / "clip-benchmark-zeroshot"
PROMPTS_MD = DATA / "openai-clip-prompts" / "prompts.md"
PHOTOS = DATA / "open-images-cc-test-images"
CIFAR = DATA / "cifar10-test-jpeg" / "test"

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    return load_clip("clipcurate-tiny", random_init=True, seed=0)


def test_shared_template_files_parse():
    t80 = load_list(str(BENCH / "en_zeroshot_classification_templates.json"), "templates", "imagenet1k")
    assert len(t80) == 80 and fill(t80[0], "tench") == "a bad photo of a tench."
    names = load_list(str(BENCH / "en_classnames.json"), "classes", "imagenet1k")
    assert len(names) == 1000 and names[0] == "tench"
    md = parse_prompts_md(PROMPTS_MD.read_text())
    assert len(md) == 26 and md["CIFAR10"]["classes"][0] == "airplane"
    assert load_list(str(PROMPTS_MD), "templates", "cifar10")[0] == "a photo of a {}."
    with pytest.raises(ValueError, match="choices"):
        load_list(str(BENCH / "en_classnames.json"), "classes", None)
    with pytest.raises(ValueError, match="placeholder"):
        fill("no placeholder", "cat")


def test_ensemble_is_normalised_mean_of_template_embeddings(tiny):
    templates = load_list(str(PROMPTS_MD), "templates", "cifar10")
    clf = build_classifier(tiny.model, tiny.tokenizer, ["cat", "dog", "ship"], templates)
    assert clf.shape == (64, 3)
    assert torch.allclose(clf.norm(dim=0), torch.ones(3), atol=1e-5)
    with torch.no_grad():
        per = tiny.model.encode_text(tiny.tokenizer([t.format("dog") for t in templates]), normalize=True)
    expected = torch.nn.functional.normalize(per.mean(0), dim=0)
    assert torch.allclose(clf[:, 1], expected, atol=1e-5)


def test_zeroshot_on_real_photos_with_80_templates(tiny):
    classes = load_list(str(BENCH / "en_classnames.json"), "classes", "imagenet1k")[:10]
    templates = load_list(str(BENCH / "en_zeroshot_classification_templates.json"), "templates", "imagenet1k")
    photos = image_folder(str(PHOTOS))
    assert photos.labels is None and len(photos.paths) == 18
    feats = encode_images(tiny.model, tiny.preprocess, photos.paths)
    res = zeroshot_classify(feats, build_classifier(tiny.model, tiny.tokenizer, classes, templates), classes,
                            paths=photos.paths)
    assert res["n"] == 18 and len(res["predictions"]) == 18
    for p in res["predictions"]:
        assert 0 <= p["pred"] < 10 and p["pred_name"] == classes[p["pred"]]
        assert len(set(p["top5"])) == 5 and p["top5"][0] == p["pred"]


def test_topk_accuracy_counts_ranks():
    logits = np.array([[3, 2, 1, 0, -1, -2], [0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]], dtype=float)
    acc = topk_accuracy(logits, [0, 0, 3])
    assert acc["top1"] == pytest.approx(1 / 3) and acc["top5"] == pytest.approx(2 / 3)


def _cifar_folder(root, classes, per_class):
    """An ImageFolder (root/<class>/NNNN.jpg) of symlinks to the first real CIFAR-10 test JPEGs."""
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            os.symlink(CIFAR / c / f"{i:04d}.jpg", root / c / f"{i:04d}.jpg")
    return root


def test_cli_eval_zeroshot_on_cifar_folder(tmp_path):
    root = _cifar_folder(tmp_path / "imgs", ("cat", "ship", "truck"), 4)
    out = tmp_path / "zs.json"
    parser = __import__("argparse").ArgumentParser()
    cli.add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval-zeroshot", "--random-init", "--images", str(root), "--templates",
                              str(BENCH / "en_zeroshot_classification_templates.json"), "--dataset", "cifar10",
                              "--output", str(out)])
    assert cli.run(args) == 0
    res = json.loads(out.read_text())
    assert res["classes"] == ["cat", "ship", "truck"] and res["n"] == 12 and len(res["templates"]) == 18
    assert 0 <= res["top1"] <= res["top5"] == 1.0  # 3 classes: top-5 always holds the label
    assert [p["label"] for p in res["predictions"]] == [0] * 4 + [1] * 4 + [2] * 4
    bad = parser.parse_args(["eval-zeroshot", "--random-init", "--images", str(root), "--classnames", "a,b",
                             "--templates", str(PROMPTS_MD), "--dataset", "CIFAR10", "--output", str(out)])
    assert cli.run(bad) == 2  # 2 class names for 3 folders


def _blobs(n_per_class: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(4, dim)) * 3
    x = np.concatenate([c + rng.normal(size=(n_per_class, dim)) for c in centers])
    return x.astype(np.float32), np.repeat(np.arange(4), n_per_class)


def test_linear_probe_separable_features():
    x, y = _blobs(60, 16, seed=1)
    tr, te = split_balanced(y.tolist(), 0.5, seed=0)
    res = linear_probe(x[tr], y[tr], x[te], y[te], c_values=[1e-6, 1e-2, 1.0, 100.0])
    assert res["top1"] >= 0.95 and res["n_test"] == 120 and res["n_train"] + res["n_val"] == 120
    assert [s["C"] for s in res["sweep"]] == [1e-6, 1e-2, 1.0, 100.0]
    best = max(s["val_top1"] for s in res["sweep"])
    assert next(s for s in res["sweep"] if s["C"] == res["best_C"])["val_top1"] == best


def test_linear_probe_shuffled_labels_near_chance():
    x, y = _blobs(60, 16, seed=2)
    y_perm = np.random.default_rng(0).permutation(y)
    tr, te = split_balanced(y_perm.tolist(), 0.5, seed=0)
    res = linear_probe(x[tr], y_perm[tr], x[te], y_perm[te], c_values=[1e-2, 1.0])
    assert res["top1"] < 0.5


def test_split_balanced_is_per_class_and_seeded():
    y = [0] * 10 + [1] * 6
    a, b = split_balanced(y, 0.5, seed=3)
    assert sorted(a + b) == list(range(16)) and sum(1 for i in b if y[i] == 1) == 3
    assert split_balanced(y, 0.5, seed=3) == (a, b) and split_balanced(y, 0.5, seed=4) != (a, b)


def test_cli_linear_probe_on_real_images(tmp_path):
    root = _cifar_folder(tmp_path / "imgs", ("frog", "ship", "truck"), 6)
    out = tmp_path / "lp.json"
    assert cli.main(["eval-linear-probe", "--random-init", "--train", str(root), "--c-values", "0.1,10",
                     "--output", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n_test"] == 9 and res["n_train"] + res["n_val"] == 9 and res["n_features"] == 64
    assert res["classes"] == ["frog", "ship", "truck"] and 0.0 <= res["top1"] <= 1.0
    assert res["best_C"] in (0.1, 10.0)
