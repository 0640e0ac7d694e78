"""load_clip / save_checkpoint / read_checkpoint: the tiny config, seeded init, offline errors."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import open_clip
import pytest
import torch

from clipcurate.scoring.model import (CHECKPOINT_FORMAT, TINY_MODEL, ModelUnavailableError, load_clip,
                                      read_checkpoint, save_checkpoint)


def test_tiny_config_is_registered_and_small():
    assert TINY_MODEL in open_clip.list_models()
    m = load_clip(TINY_MODEL, random_init=True)
    assert not m.model.training
    assert m.tokenizer(["a cat"]).shape == (1, 32)
    img = torch.zeros(2, 3, 64, 64)
    assert m.model.encode_image(img).shape == (2, 64)
    assert sum(p.numel() for p in m.model.parameters()) < 10_000_000


def test_random_init_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = load_clip(TINY_MODEL, random_init=True, seed=7)
    after = torch.rand(1)
    b = load_clip(TINY_MODEL, random_init=True, seed=7)
    c = load_clip(TINY_MODEL, random_init=True, seed=8)
    assert torch.equal(before, after)
    assert a.identity["weights_sha256"] == b.identity["weights_sha256"] != c.identity["weights_sha256"]
    assert a.identity["random_init"] is True and a.identity["seed"] == 7


def test_checkpoint_roundtrip_weights_only(tmp_path):
    a = load_clip(TINY_MODEL, random_init=True, seed=3)
    path = tmp_path / "sub" / "tiny.pt"
    sha = save_checkpoint(path, a.model, TINY_MODEL, {"epoch": 2, "metrics": {"acc": [0.5, None]}})
    assert [p.name for p in path.parent.iterdir()] == ["tiny.pt"]  # no temp file left
    blob = torch.load(path, weights_only=True)
    assert blob["format"] == CHECKPOINT_FORMAT and blob["model_name"] == TINY_MODEL and blob["epoch"] == 2
    assert read_checkpoint(path)["metrics"] == {"acc": [0.5, None]}
    b = load_clip("", checkpoint=str(path))
    assert b.identity["weights_sha256"] == a.identity["weights_sha256"]
    assert b.identity["checkpoint_sha256"] == sha and b.identity["random_init"] is False
    with pytest.raises(ValueError, match="holds model 'clipcurate-tiny', not 'ViT-B-32'"):
        load_clip("ViT-B-32", checkpoint=str(path))


def test_plain_state_dict_checkpoint(tmp_path):
    a = load_clip(TINY_MODEL, random_init=True, seed=4)
    path = tmp_path / "sd.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in a.model.state_dict().items()}}, path)
    b = load_clip(TINY_MODEL, checkpoint=str(path))
    assert b.identity["weights_sha256"] == a.identity["weights_sha256"]


def test_checkpoint_extras_must_be_plain(tmp_path):
    a = load_clip(TINY_MODEL, random_init=True)
    with pytest.raises(TypeError, match=r"extra\.opt"):
        save_checkpoint(tmp_path / "x.pt", a.model, TINY_MODEL, {"opt": object()})
    with pytest.raises(ValueError, match="may not set"):
        save_checkpoint(tmp_path / "x.pt", a.model, TINY_MODEL, {"state_dict": {}})
    assert not list(tmp_path.iterdir())


class Payload:
    """Any class outside torch's allow-list: loading it would run arbitrary code."""


def test_unpickling_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Payload()}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        read_checkpoint(path)


@pytest.mark.parametrize("model,tag,match", [
    ("ViT-B-32", "laion2b_s34b_b79k", "not in the local cache"),
    ("ViT-B-32", "openai", "not in the local cache"),
    ("ViT-B-32", "no_such_tag", "unknown pretrained tag"),
])
def test_offline_tags_fail_fast_with_a_hint(model, tag, match):
    with pytest.raises(ModelUnavailableError, match=match) as e:
        load_clip(model, pretrained=tag)
    assert repr(model) in str(e.value) and "checkpoint=" in str(e.value)


def test_unknown_model_and_missing_weights():
    with pytest.raises(ModelUnavailableError, match="'ViT-Nope' is not an open_clip architecture"):
        load_clip("ViT-Nope", random_init=True)
    with pytest.raises(ModelUnavailableError, match="no weights given"):
        load_clip(TINY_MODEL)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_clip(TINY_MODEL, checkpoint="/nonexistent/nope.pt")
