"""Training checkpoints: a superset of scoring's ``clipcurate-clip-v1`` format.

``{"format", "model_name", "state_dict"}`` (what :func:`clipcurate.scoring.model.load_clip`
reads) plus ``"train_state"`` (optimizer, scaler, step, stream position) and
``"train_config"``.  Everything loads with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import glob
import os
import re
from typing import Any

from clipcurate.extras import require_models

require_models("clipcurate training", ("torch",))

import torch

from clipcurate.scoring.model import checkpoint_blob, read_checkpoint, write_checkpoint_blob


def save_training_checkpoint(path: str | os.PathLike, model: torch.nn.Module, model_name: str,
                             train_state: dict[str, Any], train_config: dict[str, Any]) -> str:
    """Write weights + resumable state atomically (temp name, then rename); return the path."""
    blob = checkpoint_blob(model, model_name, {"train_state": train_state, "train_config": train_config})
    write_checkpoint_blob(path, blob)
    return str(path)


def load_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint (weights_only=True); raises ValueError if it has no train_state."""
    blob = read_checkpoint(path)
    if "train_state" not in blob:
        raise ValueError(f"checkpoint {path} has no train_state (not written by clipcurate train); "
                         f"use it as init_checkpoint instead of resume")
    return blob


def latest_checkpoint(output: str | os.PathLike) -> str | None:
    """The ``step_NNNNNNN.pt`` with the highest step in ``output/checkpoints``, or None."""
    found = glob.glob(os.path.join(output, "checkpoints", "step_*.pt"))
    steps = [(int(m.group(1)), p) for p in found if (m := re.search(r"step_(\d+)\.pt$", p))]
    return max(steps)[1] if steps else None


def checkpoint_path(output: str | os.PathLike, step: int) -> str:
    return os.path.join(output, "checkpoints", f"step_{step:07d}.pt")
