"""Settings of one CLIP training run (``clipcurate train``)."""
from __future__ import annotations

from dataclasses import dataclass

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Contrastive image-text pretraining on webdataset shards.

    ``steps`` optimizer steps of ``batch_size * accum_steps`` samples each (the contrastive
    batch is the full ``batch_size * accum_steps``: gradient accumulation caches features so
    the loss sees every negative, as open_clip's ``--accum-freq`` does).
    """
    shards: str = ""                  # glob, brace pattern or comma list of .tar files / a dir
    output: str = "train_out"         # checkpoints, train_log.jsonl, summary.json
    model: str = "clipcurate-tiny"    # any open_clip model config name
    pretrained: str | None = None     # open_clip pretrained tag (needs a local cache)
    init_checkpoint: str | None = None  # start from these weights (clipcurate checkpoint)
    seed: int = 0
    steps: int = 100
    batch_size: int = 64
    accum_steps: int = 1
    lr: float = 5e-4
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    warmup_steps: int = 10
    grad_clip: float | None = None    # max grad norm (None: no clipping)
    precision: str = "fp32"           # fp32 | bf16 | fp16 (autocast, CUDA only)
    device: str = "auto"              # auto | cpu | cuda
    shuffle_buffer: int = 1000        # sample shuffle buffer (seeded per epoch)
    save_every: int = 0               # also checkpoint every N steps (0: only at the end)
    resume: str | None = None         # checkpoint to resume from, or "latest" in output
    log_every: int = 10
    threads: int = 0                  # torch CPU threads (0: leave torch's default)
    progress: bool = True

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}; choose from {', '.join(PRECISIONS)}")
        for name in ("steps", "batch_size", "accum_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be >= 0")
