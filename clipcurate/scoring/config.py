from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ScoringConfig:
    """CLIP image-text scoring with open_clip and the score filter."""
    enabled: bool = True
    model: str = "ViT-B-32"
    pretrained: str | None = None     # open_clip pretrained tag (needs the hub or a cache)
    checkpoint: str | None = None     # local checkpoint file (weights_only load)
    random_init: bool = False         # demo/tests: a seeded randomly initialised model
    device: str = "auto"              # auto | cpu | cuda
    precision: str = "fp32"           # fp32 | bf16 | fp16 (autocast on GPU)
    min_batch_size: int = 8
    max_batch_size: int = 256
    threshold: float | None = None    # keep clip_score >= threshold
    top_fraction: float | None = None  # keep the global top fraction
