"""open_clip's own trainer (``python -m open_clip_train.main --dataset-type webdataset``) trains
on the shards the demo pipeline writes, unpatched, in the environment of
``pip install open_clip_torch[training]`` next to ours (the ``train`` extra: webdataset 0.2.86).

open_clip_torch[training] pins ``webdataset<=0.2.86``; a newer webdataset ends each tar with
an EOF marker its trainer does not expect (``KeyError: 'fname'``, open_clip#935).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

pytest.importorskip("open_clip_train.main", reason="open_clip_train ships in open_clip_torch's wheel")

ROOT = Path(__file__).resolve().parents[1]
# open_clip_train.main with our package's model configs registered (clipcurate-tiny, a 64 px ViT)
MAIN = "import sys, clipcurate.scoring.model; from open_clip_train.main import main; main(sys.argv[1:])"


def _webdataset_version() -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", metadata.version("webdataset"))[:3])


def test_train_extra_pins_the_webdataset_open_clip_training_accepts():
    """pyproject's ``train`` extra and open_clip_torch[training] agree on webdataset."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["train"]
    assert any(r.startswith("open_clip_torch[training]") for r in extra), extra
    assert any(r.replace(" ", "").startswith("webdataset==0.2.86") for r in extra), extra
    oc = [r for r in metadata.requires("open_clip_torch") or [] if r.startswith("webdataset")
          and 'extra == "training"' in r]
    assert oc and "<=0.2.86" in oc[0], oc


@pytest.fixture(scope="module")
def demo_shards(tmp_path_factory) -> tuple[Path, dict]:
    """The demo pipeline (loopback web, every stage) run once into a temp folder."""
    from clipcurate.demo import demo_config, demo_dir, serve_directory, write_candidates
    from clipcurate.pipelines.curate import run

    base = tmp_path_factory.mktemp("octrain")
    with serve_directory(demo_dir()) as url:
        cands = write_candidates(url, base / "candidates.parquet")
        manifest = run(demo_config(str(base / "run"), str(cands)), [], report=False)
    return base / "run", manifest


def test_open_clip_train_main_trains_on_demo_shards(demo_shards, tmp_path):
    if _webdataset_version() > (0, 2, 86):
        pytest.skip(f"webdataset {metadata.version('webdataset')} is newer than open_clip_torch[training] "
                    "allows (<=0.2.86); install ours with the train extra: pip install -e '.[train]'")
    out, manifest = demo_shards
    n = manifest["total_samples"]
    tars = sorted(str(out / s["tar"]) for s in manifest["shards"])
    assert n >= 4 and tars
    batch = 4
    argv = ["--train-data", "::".join(tars), "--dataset-type", "webdataset", "--train-num-samples", str(n),
            "--batch-size", str(batch), "--epochs", "1", "--model", "clipcurate-tiny", "--workers", "0",
            "--device", "cpu", "--precision", "fp32", "--lr", "1e-4", "--warmup", "1", "--seed", "0",
            "--logs", str(tmp_path), "--name", "oc", "--save-frequency", "1", "--log-every-n-steps", "1",
            "--report-to", ""]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-c", MAIN, *argv], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "KeyError" not in log
    losses = [float(x) for x in re.findall(r"Contrastive_loss: ([0-9.]+)", log)]
    assert losses and all(0 < x < 20 for x in losses), log[-4000:]
    ckpt = tmp_path / "oc" / "checkpoints" / "epoch_1.pt"
    assert ckpt.is_file()
    import torch
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["epoch"] == 1 and "state_dict" in state
    # the trainer saw whole batches of our samples: n // batch steps (open_clip drops the last partial)
    params = (tmp_path / "oc" / "params.txt").read_text()
    assert "dataset_type: webdataset" in params and "model: clipcurate-tiny" in params
    steps = re.findall(r"Train Epoch: 0 \[\s*(\d+)/(\d+)", log)
    assert steps and int(steps[-1][1]) == (n // batch) * batch, steps
    assert json.dumps(losses)  # losses are numbers
