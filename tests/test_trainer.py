"""Trainer: loss goes down on real images, resume continues the same curve, accumulation
equals the big batch, checkpoints load in the scoring stage, open_clip's loader reads shards."""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import webdataset as wds

from clipcurate.scoring.model import load_clip, read_checkpoint
from clipcurate.trainer.config import TrainConfig
from clipcurate.trainer.data import batches, list_shards
from clipcurate.trainer.train import accumulated_backward, lr_at, make_loss, train
from clipcurate.testing.shared_data import SHARED_DATA

DATA = SHARED_DATA
CIFAR = DATA / "cifar10-test-jpeg" / "test"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TEMPLATES = ["a photo of a {}.", "a blurry photo of a {}.", "my {} today", "a picture of the {}"]

torch.set_num_threads(1)


def write_shards(out: Path, per_class: int, classes=CLASSES[:4], per_shard: int = 16) -> list[tuple[str, str]]:
    """Webdataset tars of real CIFAR-10 JPEGs with templated captions; returns (key, caption)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for c in classes:
        for i in range(per_class):
            data = (CIFAR / c / f"{i:04d}.jpg").read_bytes()
            caption = TEMPLATES[i % len(TEMPLATES)].format(c)
            rows.append((hashlib.blake2b(f"{c}/{i}".encode(), digest_size=16).hexdigest(), caption, data))
    rows.sort()
    for s in range(0, len(rows), per_shard):
        with wds.TarWriter(str(out / f"{s // per_shard:05d}.tar")) as w:
            for key, caption, data in rows[s:s + per_shard]:
                w.write({"__key__": key, "jpg": data, "txt": caption,
                         "json": json.dumps({"uid": key, "caption": caption}).encode()})
    return [(k, c) for k, c, _ in rows]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run") / "shards"
    write_shards(root, per_class=8)
    return root.parent


def _cfg(shards: Path, out: Path, **kw) -> TrainConfig:
    base = dict(shards=str(shards), output=str(out), steps=6, batch_size=16, lr=1e-3, warmup_steps=1,
                seed=3, shuffle_buffer=32, progress=False, threads=1)
    return TrainConfig(**{**base, **kw})


def test_loss_decreases_on_real_images(shards, tmp_path):
    summary = train(_cfg(shards, tmp_path / "a", steps=12))
    losses = summary["losses"]
    assert len(losses) == 12 and all(math.isfinite(x) for x in losses)
    # initial loss of a random CLIP is ~ln(batch); training on 32 pairs must bring it well below
    assert losses[0] == pytest.approx(math.log(16), rel=0.15)
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3
    assert summary["samples_seen"] == 12 * 16
    log_lines = (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in log_lines] == [10, 12]   # log_every=10 and the last step


def test_resume_continues_the_same_curve(shards, tmp_path):
    full = train(_cfg(shards, tmp_path / "full"))["losses"]
    first = train(_cfg(shards, tmp_path / "split", steps=6, save_every=3))
    # the run went on to step 6; resume from its step-3 checkpoint in a fresh dir
    ck = tmp_path / "split" / "checkpoints" / "step_0000003.pt"
    second = train(_cfg(shards, tmp_path / "resumed", resume=str(ck)))
    assert first["losses"] == pytest.approx(full, abs=1e-6)
    assert second["losses"] == pytest.approx(full[3:], abs=1e-5)
    a = read_checkpoint(second["final_checkpoint"])["state_dict"]
    b = read_checkpoint(tmp_path / "full" / "checkpoints" / "step_0000006.pt")["state_dict"]
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_resume_refuses_changed_batch_size(shards, tmp_path):
    summary = train(_cfg(shards, tmp_path / "a", steps=2))
    with pytest.raises(ValueError, match="batch_size"):
        train(_cfg(shards, tmp_path / "b", steps=4, batch_size=8, resume=summary["final_checkpoint"]))


def test_accumulation_matches_the_full_batch(shards):
    loaded = load_clip("clipcurate-tiny", random_init=True, seed=1)
    model = loaded.model.train()
    stream = batches(list_shards(str(shards)), loaded.preprocess, loaded.tokenizer, 8, seed=0, shuffle_buffer=1)
    micro = [next(stream), next(stream)]
    big = SimpleNamespace(images=torch.cat([m.images for m in micro]), texts=torch.cat([m.texts for m in micro]))
    import contextlib
    grads = []
    for parts in ([big], micro):
        model.zero_grad()
        loss = accumulated_backward(model, make_loss(model), parts, contextlib.nullcontext, None)
        grads.append((loss, {n: p.grad.clone() for n, p in model.named_parameters()}))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
    for n, g in grads[0][1].items():
        assert torch.allclose(g, grads[1][1][n], atol=1e-6, rtol=1e-4), n


def test_checkpoint_plugs_into_scoring(shards, tmp_path):
    summary = train(_cfg(shards, tmp_path / "a", steps=2))
    blob = torch.load(summary["final_checkpoint"], map_location="cpu", weights_only=True)
    assert blob["format"] == "clipcurate-clip-v1" and blob["train_state"]["step"] == 2
    loaded = load_clip("clipcurate-tiny", checkpoint=summary["final_checkpoint"])
    trained = blob["state_dict"]["logit_scale"]
    assert torch.equal(loaded.model.state_dict()["logit_scale"], trained)
    assert loaded.identity["checkpoint_sha256"]


def test_lr_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 1.0, 4, 20) for s in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:])) and lrs[-1] < 0.01


def test_open_clip_training_loader_reads_our_shards(shards, monkeypatch):
    """open_clip_train.data.get_wds_dataset (the loader of open_clip's own training script).

    webdataset>=0.2.96 ends each tar with an EOF marker that open_clip_train's
    group_by_keys_nothrow does not expect (open_clip#935, webdataset#384); the upstream fix is
    ``eof_value=None``, applied here as docs/trainer.md tells users to."""
    data = pytest.importorskip("open_clip_train.data", reason="open_clip_train ships with open_clip_torch>=2.24")
    if "eof_value" in inspect.signature(data.tar_file_expander).parameters:
        monkeypatch.setattr(data, "tar_file_expander", functools.partial(data.tar_file_expander, eof_value=None))
    loaded = load_clip("clipcurate-tiny", random_init=True)
    tars = list_shards(str(shards))
    args = SimpleNamespace(train_data="::".join(tars), val_data=None, dataset_resampled=False,
                           train_num_samples=32, train_data_upsampling_factors=None, seed=0,
                           batch_size=8, workers=0, world_size=1)
    info = data.get_wds_dataset(args, loaded.preprocess, is_train=True, tokenizer=loaded.tokenizer)
    n = 0
    for images, texts in info.dataloader:
        assert images.shape == (8, 3, 64, 64) and texts.shape == (8, 32)
        n += images.shape[0]
    assert n == info.dataloader.num_samples == 32


def test_cli_train_and_config_file(shards, tmp_path):
    from clipcurate.trainer import cli
    cfg = tmp_path / "train.toml"
    cfg.write_text(f'shards = "{shards}"\nsteps = 2\nbatch_size = 8\nthreads = 1\n')
    out = tmp_path / "cli"
    assert cli.main(["train", "--config", str(cfg), "--output", str(out), "--steps", "3", "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["samples_seen"] == 24   # flag overrides the file
    assert cli.main(["train", "--shards", str(tmp_path / "nothing"), "--output", str(out)]) == 2
