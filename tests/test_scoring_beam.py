"""Score / ScoreFilter in Beam on real photos: pipeline scores equal open_clip's, counts add
up, filters keep exactly the expected rows, the cut is the same with 1 or 2 workers."""
import glob
import io
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from apache_beam.options.pipeline_options import PipelineOptions
from PIL import Image

from clipcurate.schemas.uid import make_uid
from clipcurate.scoring import cut as cutlib
from clipcurate.scoring.config import ScoringConfig
from clipcurate.scoring.model import TINY_MODEL, load_clip
from clipcurate.scoring.transforms import Score, ScoreFilter
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
IN_PROCESS = ["--runner=FnApiRunner"]
TWO_WORKERS = ["--runner=FnApiRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def photo_records():
    files = sorted((DATA / "imagenet-sample-images-subset").glob("*.JPEG"))[:30]
    files += sorted((DATA / "open-images-cc-test-images").glob("*.jpg"))[:10]
    recs = [{"uid": make_uid(f"http://x/{f.name}", f.stem), "caption": f"a photo of {f.stem.split('_', 1)[-1]}",
             "image": f.read_bytes()} for f in files]
    recs.append({"uid": make_uid("http://x/bad", "bad"), "caption": "bad", "image": b"\x89PNG garbage"})
    recs.append({"uid": make_uid("http://x/empty", "empty"), "caption": "empty", "image": b""})
    recs.append({"uid": make_uid("http://x/long", "long"), "caption": "a long caption " * 30,
                 "image": files[0].read_bytes()})
    return recs


def _tagged(name):
    """A picklable-by-value Map fn: element -> JSON line [name, element without image bytes]."""
    return lambda x: json.dumps([name, {k: v for k, v in x.items() if k != "image"} if isinstance(x, dict) else x])


def run(recs, cfg, tmp, argv=IN_PROCESS, score=True):
    """(Score +) ScoreFilter with rejects kept; all outputs go to one JSON-lines file set."""
    with beam.Pipeline(options=PipelineOptions(argv)) as p:
        pc = p | beam.Create(recs, reshuffle=False)
        outs = []
        if score:
            s = pc | "Score" >> Score(cfg, seed=0, keep_rejects=True)
            pc = s["kept"]
            outs += [("scored", s["kept"]), ("rejects", s["rejects"]), ("counts", s["counts"]), ("stats", s["stats"])]
        f = pc | "Filter" >> ScoreFilter(cfg, keep_rejects=True)
        outs += [("kept", f["kept"]), ("rejects", f["rejects"]), ("counts", f["counts"]), ("stats", f["stats"])]
        lines = [pcoll | f"Json{i}" >> beam.Map(_tagged(name)) for i, (name, pcoll) in enumerate(outs)]
        lines | beam.Flatten() | beam.io.WriteToText(str(tmp / "out"))
    got = {"scored": [], "kept": [], "rejects": [], "counts": [], "stats": []}
    for f in sorted(glob.glob(str(tmp / "out") + "*")):
        for line in open(f):
            name, x = json.loads(line)
            got[name].append(x)
    counts = {}
    for (stage, key), n in got["counts"]:
        counts[(stage, key)] = counts.get((stage, key), 0) + n
    return dict(got, counts=counts, stats=dict(got["stats"]), scored=got["scored"] if score else None)


def direct(loaded, recs):
    ok = [r for r in recs if r["image"][:3] == b"\xff\xd8\xff"]
    with torch.no_grad():
        px = torch.stack([loaded.preprocess(Image.open(io.BytesIO(r["image"]))) for r in ok])
        img = F.normalize(loaded.model.encode_image(px), dim=-1)
        txt = F.normalize(loaded.model.encode_text(loaded.tokenizer([r["caption"] for r in ok])), dim=-1)
    return dict(zip([r["uid"] for r in ok], (img * txt).sum(-1).tolist()))


def check_counts(counts, stage):
    dropped = sum(n for (s, k), n in counts.items() if s == stage and k.startswith("dropped:"))
    assert counts[(stage, "in")] == counts[(stage, "kept")] + dropped


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    cfg = ScoringConfig(model=TINY_MODEL, random_init=True, device="cpu", top_fraction=0.3,
                        min_batch_size=1, max_batch_size=7,
                        embeddings_dir=str(tmp_path_factory.mktemp("emb")), embedding_shards=3)
    recs = photo_records()
    return cfg, recs, run(recs, cfg, tmp_path_factory.mktemp("out"))


def test_pipeline_scores_equal_direct_open_clip(scored_run):
    cfg, recs, out = scored_run
    want = direct(load_clip(TINY_MODEL, random_init=True, seed=0), recs)
    got = {r["uid"]: r["clip_score"] for r in out["scored"]}
    assert got.keys() == want.keys() and len(got) == len(recs) - 2
    np.testing.assert_allclose([got[u] for u in want], list(want.values()), atol=1e-4, rtol=0)


def test_counts_rejects_and_model_stats(scored_run):
    cfg, recs, out = scored_run
    c = out["counts"]
    assert c[("score", "in")] == len(recs) and c[("score", "dropped:score_error")] == 2
    check_counts(c, "score")
    check_counts(c, "score_filter")
    errors = {r["caption"]: r for r in out["rejects"] if r["stage"] == "score"}
    assert set(errors) == {"bad", "empty"} and all(r["reason"] == "score_error" for r in errors.values())
    model = out["stats"]["scoring_model"]
    assert model["model"] == TINY_MODEL and model["random_init"] is True
    assert model["weights_sha256"] == load_clip(TINY_MODEL, random_init=True, seed=0).identity["weights_sha256"]
    assert out["stats"]["score_captions_truncated"] == 1


def test_top_fraction_keeps_exactly_the_reference_rows(scored_run):
    cfg, recs, out = scored_run
    pairs = [(r["clip_score"], r["uid"]) for r in out["scored"]]
    ref = cutlib.exact_top_cut(pairs, 0.3)
    want = sorted(pairs, key=lambda p: (-p[0], p[1]))[:ref["k"]]
    assert sorted(r["uid"] for r in out["kept"]) == sorted(u for _, u in want)
    cut = out["stats"]["score_cut"]
    assert cut["k"] == round(0.3 * len(pairs)) and cut["value"] == ref["value"] and cut["uid"] == ref["uid"]
    assert out["counts"][("score_filter", "dropped:low_score")] == len(pairs) - cut["k"]


def test_embeddings_shards(scored_run):
    cfg, recs, out = scored_run
    tables = [pq.read_table(f) for f in sorted(glob.glob(os.path.join(cfg.embeddings_dir, "*.parquet")))]
    assert len(tables) == 3
    uids = [u for t in tables for u in t.column("uid").to_pylist()]
    assert sorted(uids) == sorted(r["uid"] for r in out["scored"])
    assert all(t.column("uid").to_pylist() == sorted(t.column("uid").to_pylist()) for t in tables)
    scores = {r["uid"]: r["clip_score"] for r in out["scored"]}
    for t in tables:
        img = np.stack(t.column("image_embedding").to_numpy(zero_copy_only=False))
        txt = np.stack(t.column("text_embedding").to_numpy(zero_copy_only=False))
        np.testing.assert_allclose((img * txt).sum(1), [scores[u] for u in t.column("uid").to_pylist()],
                                   atol=1e-5)


def scored_rows(n=500, seed=3):
    rng = np.random.default_rng(seed)
    return [{"uid": make_uid(f"http://s/{i}", "c"), "caption": "c", "clip_score": float(s)}
            for i, s in enumerate(np.round(rng.normal(0.25, 0.05, n), 3))]


@pytest.mark.parametrize("kw,expect", [
    ({"threshold": 0.27}, lambda s, u: s >= 0.27),
    ({}, lambda s, u: True),
])
def test_threshold_and_pass_through(tmp_path, kw, expect):
    rows = scored_rows()
    out = run(rows, ScoringConfig(model=TINY_MODEL, **kw), tmp_path, score=False)
    assert sorted(r["uid"] for r in out["kept"]) == sorted(r["uid"] for r in rows if expect(r["clip_score"], r["uid"]))
    assert out["stats"]["score_cut"]["mode"] == ("threshold" if kw else "none")
    check_counts(out["counts"], "score_filter")


def test_approximate_top_fraction_is_close(tmp_path):
    rows = scored_rows(2000)
    out = run(rows, ScoringConfig(model=TINY_MODEL, top_fraction=0.15, quantile="approximate"), tmp_path, score=False)
    cut = out["stats"]["score_cut"]
    assert cut["method"] == "approximate"
    assert abs(len(out["kept"]) - 300) <= 25  # ties at 3 decimals widen the band
    assert all(r["clip_score"] >= cut["value"] for r in out["kept"])


def test_cut_same_with_two_workers(tmp_path):
    rows = scored_rows(3000, seed=9)  # 3 decimals: many ties at the cut, decided by uid
    cfg = ScoringConfig(model=TINY_MODEL, top_fraction=0.15)
    single = run(rows, cfg, tmp_path / "one", score=False)
    multi = run(rows, cfg, tmp_path / "two", argv=TWO_WORKERS, score=False)
    assert multi["stats"]["score_cut"] == single["stats"]["score_cut"]
    assert sorted(r["uid"] for r in multi["kept"]) == sorted(r["uid"] for r in single["kept"])
    ref = cutlib.exact_top_cut([(r["clip_score"], r["uid"]) for r in rows], 0.15)
    assert len(multi["kept"]) == ref["k"] == 450
    assert sum(r["clip_score"] == ref["value"] for r in rows) > 1  # the tie-break was exercised


def test_random_init_weights_same_in_another_process():
    """Every worker process builds the same seeded weights (checked through a fresh interpreter)."""
    code = ("from clipcurate.scoring.model import load_clip;"
            "print(load_clip('clipcurate-tiny', random_init=True, seed=0).identity['weights_sha256'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == load_clip(TINY_MODEL, random_init=True, seed=0).identity["weights_sha256"]
