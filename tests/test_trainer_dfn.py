"""The DFN experiment's data preparation: disjoint class-balanced splits, a known corruption
fraction, noise words free of CIFAR-10 class names (the full loop runs as experiments/dfn_loop.py)."""
from __future__ import annotations

import collections
import re
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("dfn_loop", ROOT / "experiments" / "dfn_loop.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["dfn_loop"] = mod
    spec.loader.exec_module(mod)
    return mod


dfn = _load()


def test_splits_are_disjoint_and_class_balanced():
    parts = dfn.split_cifar(10, 5, 20)
    files = {k: {p for p, _ in v} for k, v in parts.items()}
    assert not (files["eval"] & files["clean"]) and not (files["eval"] & files["pool"]) and not (files["clean"] & files["pool"])
    for name, n in (("eval", 10), ("clean", 5), ("pool", 20)):
        assert collections.Counter(y for _, y in parts[name]) == {y: n for y in range(10)}
        assert all(p.is_file() and p.parent.name == dfn.CLASSES[y] for p, y in parts[name])


def test_corruption_fraction_and_kinds():
    words = dfn.noise_words()
    assert len(words) > 300 and not set(words) & set(dfn.CLASSES)
    pool = dfn.split_cifar(0, 0, 200)["pool"]
    caps = [dfn.caption_for(p, y, 0, 0.4, words) for p, y in pool]
    kinds = collections.Counter(k for _, k in caps)
    assert abs(kinds["clean"] / len(caps) - 0.6) < 0.03
    assert abs(kinds["wrong_class"] - kinds["random_words"]) < 0.05 * len(caps)
    for (caption, kind), (_, y) in zip(caps, pool):
        named = [c for c in dfn.CLASSES if c in re.findall(r"[a-z]+", caption)]
        if kind == "clean":
            assert named == [dfn.CLASSES[y]]
        elif kind == "wrong_class":
            assert len(named) == 1 and named[0] != dfn.CLASSES[y]
        else:
            assert not named
    assert [dfn.caption_for(p, y, 0, 0.4, words) for p, y in pool[:20]] == caps[:20]  # seeded
    assert [dfn.caption_for(p, y, 1, 0.4, words) for p, y in pool[:20]] != caps[:20]


def test_dfn_model_config_is_package_data_registered_in_a_fresh_process():
    """A Beam worker process only imports clipcurate: dfn-vit-tiny must be known there."""
    import subprocess
    code = ("import open_clip; assert 'dfn-vit-tiny' not in open_clip.list_models(); "
            "from clipcurate.scoring.model import register_model_configs, load_clip; "
            "names = register_model_configs(); assert {'clipcurate-tiny', 'dfn-vit-tiny'} <= set(names), names; "
            "m = load_clip('dfn-vit-tiny', random_init=True); "
            "print(m.model.visual.image_size, m.tokenizer(['a cat']).shape[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "(32, 32) 16"


def test_growing_the_clean_subset_leaves_pool_and_eval_split_unchanged():
    small, large = dfn.split_cifar(100, 150, 400), dfn.split_cifar(100, 300, 400)
    assert small["pool"] == large["pool"] and small["eval"] == large["eval"]
    assert set(small["clean"]) < set(large["clean"])


def test_filter_ablation_quality_counts_removed_against_corrupted():
    import numpy as np
    spec = importlib.util.spec_from_file_location("dfn_filter_ablation", ROOT / "experiments" / "dfn_filter_ablation.py")
    abl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(abl)
    kinds = ["clean"] * 6 + ["wrong_class"] * 2 + ["random_words"] * 2
    # scores: clean 1.0 .. 0.5, one corrupted pair of each kind scores high (0.9, 0.8)
    scores = np.array([1.0, 0.95, 0.7, 0.6, 0.55, 0.5, 0.9, 0.1, 0.8, 0.0])
    q = abl.quality(scores, kinds, [0.5])
    # kept top 5: 1.0, 0.95, 0.9 (wrong), 0.8 (random), 0.7 -> removed 5, of which 2 corrupted
    assert q["keep0.5"] == {"precision": 2 / 5, "recall": 2 / 4, "clean_fraction_kept": 3 / 5}
    # AUC = share of (clean, corrupted) pairs ordered right: 16 of 24; per kind 8 of 12
    assert abs(q["auc"] - 16 / 24) < 1e-12
    assert abs(q["auc_wrong_class"] - 8 / 12) < 1e-12 and abs(q["auc_random_words"] - 8 / 12) < 1e-12
