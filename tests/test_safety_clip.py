"""The pluggable NSFW head on CLIP image embeddings: the checkpoint format, and the pipeline
(demo photos on loopback, the tiny seeded CLIP model): the scoring stage's embeddings go through
the head once, the ``nsfw_clip_score`` column equals the head applied to the embeddings the
scoring stage writes, and ``safety_clip`` drops exactly the scores at or above the threshold."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from clipcurate.demo import demo_config, demo_dir, serve_directory, write_candidates
from clipcurate.pipelines.curate import run
from clipcurate.safety.clip_head import ClipHead
from clipcurate.safety.config import SafetyConfig

DIM = json.loads((Path(__file__).resolve().parents[1] / "clipcurate" / "scoring" / "model_configs"
                  / "clipcurate-tiny.json").read_text())["embed_dim"]


def _head(path: Path, dim: int = DIM, seed: int = 3, norm: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    arrays = {"W0": rng.normal(0, 0.5, (dim, 16)), "b0": rng.normal(0, 0.1, 16),
              "W1": rng.normal(0, 0.5, (16, 1)), "b1": np.zeros(1)}
    if norm:
        arrays |= {"mean": rng.normal(0, 0.01, dim), "var": np.full(dim, 0.02)}
    np.savez(path, **arrays)
    return path


def test_head_is_an_mlp_with_sigmoid(tmp_path):
    path = _head(tmp_path / "head.npz")
    head = ClipHead(str(path))
    a = dict(np.load(path))
    x = np.random.default_rng(0).normal(size=(5, DIM)).astype(np.float32)
    h = np.maximum(((x - a["mean"]) / (np.sqrt(a["var"]) + 1e-7)) @ a["W0"] + a["b0"], 0) @ a["W1"] + a["b1"]
    np.testing.assert_allclose(head(x), 1 / (1 + np.exp(-h[:, 0])), rtol=1e-4, atol=1e-6)
    assert head.identity()["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert head.identity()["file"] == "head.npz" and head.identity()["layers"] == [[DIM, 16], [16, 1]]
    with pytest.raises(ValueError, match="takes 64-d"):
        head(np.zeros((1, 32)))
    np.savez(tmp_path / "bad.npz", W0=np.zeros((DIM, 2)))
    with pytest.raises(ValueError, match="one output"):
        ClipHead(str(tmp_path / "bad.npz"))
    (tmp_path / "not.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a NumPy"):
        ClipHead(str(tmp_path / "not.npz"))
    with pytest.raises(FileNotFoundError):
        ClipHead(str(tmp_path / "missing.npz"))
    with pytest.raises(ValueError, match="needs safety.nsfw_clip_head"):
        SafetyConfig(nsfw_clip_threshold=0.5)


def _run(tmp_path, name, head_path, threshold):
    with serve_directory(demo_dir()) as url:
        cands = write_candidates(url, tmp_path / "candidates.parquet")
        cfg = demo_config(str(tmp_path / name), str(cands))
        cfg = cfg.with_overrides(["balance.enabled=false", "dedupe.caption_near=false", "dedupe.image_near=false",
                                  "scoring.top_fraction=null", f"scoring.embeddings_dir={tmp_path / name / 'emb'}",
                                  f"safety.nsfw_clip_head={head_path}", f"safety.nsfw_clip_threshold={threshold}"])
        return run(cfg, [], report=False)


def _rows(folder: Path):
    return [r for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_pipeline_scores_with_the_head_and_drops_above_threshold(tmp_path):
    head_path = _head(tmp_path / "head.npz")
    head = ClipHead(str(head_path))
    # score only: the column is the head applied to the embeddings the scoring stage wrote
    m = _run(tmp_path, "scores", head_path, "null")
    want = {r["uid"]: float(head(np.asarray(r["image_embedding"], np.float32)[None])[0])
            for r in _rows(tmp_path / "scores" / "emb")}
    st = m["stages"]["safety_clip"]
    assert list(m["stages"]).index("score") + 1 == list(m["stages"]).index("safety_clip")
    assert st["balanced"] and st["in"] == st["kept"] == m["stages"]["score"]["kept"] == len(want) >= 5
    rows = _rows(tmp_path / "scores" / "parquet")
    assert {r["uid"]: r["nsfw_clip_score"] for r in rows} == pytest.approx(want, abs=1e-5)
    assert m["stats"]["safety_clip"]["models"][0]["sha256"] == hashlib.sha256(head_path.read_bytes()).hexdigest()
    # a threshold between the scores drops exactly those at or above it
    values = sorted(want.values())
    thr = (values[len(values) // 2 - 1] + values[len(values) // 2]) / 2
    n_high = sum(v >= thr for v in values)
    m = _run(tmp_path, "cut", head_path, thr)
    st = m["stages"]["safety_clip"]
    assert st["dropped"] == {"nsfw": n_high} and st["kept"] == len(want) - n_high
    assert all(r["nsfw_clip_score"] < thr for r in _rows(tmp_path / "cut" / "parquet"))
    rej = [r for r in _rows(tmp_path / "cut" / "rejects") if r["stage"] == "safety_clip"]
    assert len(rej) == n_high and all(r["reason"] == "nsfw" and r["nsfw_clip_score"] >= thr for r in rej)
