"""Load and save the open_clip models used for scoring and training.

* :func:`load_clip` builds a model by open_clip name and returns it in eval mode with
  its own validation preprocess, its tokenizer and an identity dict for the manifest.
  Weights come from (in order) a local ``checkpoint`` file, an open_clip ``pretrained``
  tag that is already in the local cache (never downloaded: a missing tag raises a
  :class:`ModelUnavailableError` naming the model and how to supply a file), or a seeded
  random initialisation (``random_init=True``; every worker builds the same weights).
* :func:`save_checkpoint` / :func:`read_checkpoint` write and read the
  ``clipcurate-clip-v1`` format: ``{"format", "model_name", "state_dict", **extras}``,
  plain-typed so that ``torch.load(weights_only=True)`` reads it.

Every ``model_configs/*.json`` of this package is registered with open_clip on import
(so Beam worker processes that import this module know them too): ``clipcurate-tiny``
(64 px ViT) and ``dfn-vit-tiny`` (32 px ViT of the DFN experiment); both train on a
couple of CPU cores.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from clipcurate.extras import require_models

os.environ.setdefault("HF_HUB_OFFLINE", "1")
require_models("clipcurate scoring", ("torch", "open_clip"))

import torch  # noqa: E402
import open_clip  # noqa: E402

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "clipcurate-clip-v1"
TINY_MODEL = "clipcurate-tiny"
MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
_PLAIN = (str, int, float, bool, type(None))


def register_model_configs() -> list[str]:
    """Add every ``model_configs/*.json`` of this package to open_clip's registry (once: a
    rescan happens only when one of them is missing); return their names."""
    names = sorted(p.stem for p in MODEL_CONFIG_DIR.glob("*.json"))
    if not set(names) <= set(open_clip.list_models()):
        open_clip.add_model_config(MODEL_CONFIG_DIR)
    return names


register_model_configs()


class ModelUnavailableError(RuntimeError):
    """A model name or pretrained tag that cannot be loaded offline."""


@dataclass
class LoadedClip:
    """A ready model: ``model`` (eval mode), ``preprocess`` (PIL image -> CHW tensor, the
    model's own val transform), ``tokenizer`` (list[str] -> LongTensor [n, context]) and
    ``identity`` (json-able: model, pretrained, checkpoint, checkpoint_sha256, ...)."""
    model: torch.nn.Module
    preprocess: Callable
    tokenizer: Callable
    identity: dict[str, Any] = field(default_factory=dict)


# -- checkpoints -------------------------------------------------------------------------

def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def state_dict_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """Hex sha256 over sorted names, dtypes, shapes and bytes of a state dict's tensors."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _check_plain(value: Any, where: str) -> None:
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"checkpoint extra {where}: key {k!r} is not a str")
            _check_plain(v, f"{where}.{k}")
        return
    raise TypeError(f"checkpoint extra {where}: {type(value).__name__} is not a plain type "
                    f"(str/int/float/bool/None/list/dict) and would not load with weights_only=True")


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, model_name: str,
                    extra: dict[str, Any] | None = None) -> str:
    """Write ``model``'s weights as a clipcurate-clip-v1 checkpoint; return the file's sha256.

    ``extra`` holds plain-typed fields (epoch, config, metrics ...) stored next to the
    weights. The file is written to a temporary name in the same folder and renamed.
    """
    extra = dict(extra or {})
    reserved = {"format", "model_name", "state_dict"} & extra.keys()
    if reserved:
        raise ValueError(f"checkpoint extra may not set {sorted(reserved)}")
    _check_plain(extra, "extra")
    write_checkpoint_blob(path, checkpoint_blob(model, model_name, extra))
    return file_sha256(path)


def checkpoint_blob(model: torch.nn.Module, model_name: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The clipcurate-clip-v1 dict: format, model name, CPU copy of the weights, extra fields."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return {"format": CHECKPOINT_FORMAT, "model_name": model_name, "state_dict": state, **extra}


def write_checkpoint_blob(path: str | os.PathLike, blob: dict[str, Any]) -> Path:
    """``torch.save(blob)`` to a temporary name in the same folder, then rename (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(blob, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` onto the CPU.

    Returns the clipcurate-clip-v1 dict as saved; a plain state dict or an open_clip
    training checkpoint (``{"state_dict": ...}``) comes back as
    ``{"format": None, "model_name": None, "state_dict": ...}`` with a ``module.``
    prefix removed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"checkpoint {path}: cannot be read with torch.load(weights_only=True): {e}") from e
    if isinstance(blob, dict) and blob.get("format") == CHECKPOINT_FORMAT:
        return blob
    if isinstance(blob, dict) and isinstance(blob.get("state_dict"), dict):
        sd = blob["state_dict"]
    elif isinstance(blob, dict) and blob and all(isinstance(v, torch.Tensor) for v in blob.values()):
        sd = blob
    else:
        raise ValueError(f"checkpoint {path}: neither {CHECKPOINT_FORMAT} nor a state dict")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    return {"format": None, "model_name": None, "state_dict": sd}


# -- loading -----------------------------------------------------------------------------

def resolve_device(device: str) -> str:
    """Map 'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'GPU' (Beam's spelling) to a torch device string.

    'auto' and 'GPU' fall back to 'cpu' with a log line when CUDA is not available.
    """
    d = (device or "auto").strip()
    if d.lower() == "cpu":
        return "cpu"
    if d.lower() in ("auto", "gpu") or d.startswith("cuda"):
        if torch.cuda.is_available():
            return "cuda" if d.lower() in ("auto", "gpu") else d
        if d.lower() != "auto":
            log.warning("clipcurate scoring: device=%r requested but CUDA is not available; "
                        "falling back to CPU", device)
        else:
            log.info("clipcurate scoring: no CUDA device; running on CPU")
        return "cpu"
    raise ValueError(f"device={device!r}: choose auto, cpu, cuda, cuda:N or GPU")


def _hint(model: str) -> str:
    return (f"Supply weights offline: pass checkpoint=/path/to/file.pt (a clipcurate-clip-v1 "
            f"checkpoint or an open_clip state dict for {model!r}), or pretrained=/path/to/weights, "
            f"or pre-populate the Hugging Face cache (HF_HOME) with the tag's files; "
            f"random_init=True gives a seeded untrained model.")


def _cached_tag_file(model: str, tag: str) -> tuple[str, dict[str, Any]]:
    """Local file for an open_clip pretrained tag, from the HF or URL cache, never downloaded."""
    cfg = open_clip.get_pretrained_cfg(model, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise ModelUnavailableError(f"model {model!r}: unknown pretrained tag {tag!r} "
                                    f"(known tags: {tags}). {_hint(model)}")
    if cfg.get("file") and os.path.isfile(cfg["file"]):
        return cfg["file"], cfg
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache
        repo, filename = os.path.split(cfg["hf_hub"])
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith(".bin"):
            names.insert(0, filename[:-4] + ".safetensors")
        for name in names:
            hit = try_to_load_from_cache(repo_id=repo, filename=name)
            if isinstance(hit, str) and os.path.isfile(hit):
                return hit, cfg
    if cfg.get("url"):
        hit = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(cfg["url"]))
        if os.path.isfile(hit):
            return hit, cfg
    raise ModelUnavailableError(f"model {model!r} pretrained={tag!r}: weights are not in the local "
                                f"cache and downloads are disabled (offline). {_hint(model)}")


def _create(model: str, weights: str | None, tag_cfg: dict[str, Any], seed: int, device: str):
    """open_clip.create_model_and_transforms with a seeded init and the tag's preprocess."""
    if model not in open_clip.list_models():
        raise ModelUnavailableError(f"model {model!r} is not an open_clip architecture; known: "
                                    f"{', '.join(open_clip.list_models()[:20])}, ... {_hint(model)}")
    pre = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net, _, preprocess = open_clip.create_model_and_transforms(
            model, pretrained=weights, device="cpu", force_quick_gelu=bool(tag_cfg.get("quick_gelu")),
            image_mean=pre.get("mean"), image_std=pre.get("std"),
            image_interpolation=pre.get("interpolation"), image_resize_mode=pre.get("resize_mode"),
            weights_only=True)
    return net, preprocess


def describe_model(model: str, pretrained: str | None = None, checkpoint: str | None = None,
                   random_init: bool = False, seed: int = 0) -> dict[str, Any]:
    """The identity of a model as configured, without building it (for the manifest):
    name, tag, checkpoint path and file sha256, random_init and seed, open_clip version."""
    return {
        "model": model,
        "pretrained": None if checkpoint else pretrained,
        "checkpoint": str(checkpoint) if checkpoint else None,
        # None when the file is only on the workers (baked into a Dataflow container): the
        # workers report the sha256 of the weights they load
        "checkpoint_sha256": file_sha256(checkpoint) if checkpoint and os.path.isfile(checkpoint) else None,
        "random_init": bool(random_init and not (checkpoint or pretrained)),
        "seed": seed,
        "open_clip_version": open_clip.__version__,
    }


def load_clip(model: str, pretrained: str | None = None, checkpoint: str | None = None,
              random_init: bool = False, device: str = "cpu", seed: int = 0) -> LoadedClip:
    """Build an open_clip model for inference (see module docstring for the weight sources).

    ``model`` is an open_clip architecture name (ViT-B-32, clipcurate-tiny, ...); with a
    clipcurate-clip-v1 ``checkpoint`` the name stored in it must match (or ``model`` may
    be empty). Raises ModelUnavailableError when no weights can be had offline.
    """
    ck = read_checkpoint(checkpoint) if checkpoint else None
    if ck and ck["model_name"]:
        if model and model != ck["model_name"]:
            raise ValueError(f"checkpoint {checkpoint} holds model {ck['model_name']!r}, not {model!r}")
        model = ck["model_name"]
    if not model:
        raise ValueError("load_clip: model name is required")
    if not (ck or pretrained or random_init):
        raise ModelUnavailableError(f"model {model!r}: no weights given (pretrained tag, checkpoint "
                                    f"or random_init=True). {_hint(model)}")
    weights, tag_cfg = None, {}
    if pretrained and not ck:
        weights, tag_cfg = (pretrained, {}) if os.path.isfile(pretrained) else _cached_tag_file(model, pretrained)
    net, preprocess = _create(model, weights, tag_cfg, seed, "cpu")
    if ck:
        missing, unexpected = net.load_state_dict(ck["state_dict"], strict=False)
        if missing or unexpected:
            raise ValueError(f"checkpoint {checkpoint} does not fit {model!r}: "
                             f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    dev = resolve_device(device)
    net = net.to(dev).eval()
    identity = dict(describe_model(model, pretrained, checkpoint, random_init, seed),
                    weights_sha256=state_dict_sha256(net.state_dict()))
    tokenizer = open_clip.get_tokenizer(model)
    return LoadedClip(model=net, preprocess=preprocess, tokenizer=tokenizer, identity=identity)
