from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ScoringConfig:
    """CLIP image-text scoring with open_clip and the score filter (docs/scoring.md)."""
    enabled: bool = True
    model: str = "ViT-B-32"
    pretrained: str | None = None     # open_clip pretrained tag (needs the hub or a cache)
    checkpoint: str | None = None     # local checkpoint file (weights_only load)
    random_init: bool = False         # demo/tests: a seeded randomly initialised model
    device: str = "auto"              # auto | cpu | cuda | cuda:N | GPU (Beam's spelling)
    precision: str = "fp32"           # fp32 | bf16 | fp16 (autocast on GPU)
    min_batch_size: int = 8
    max_batch_size: int = 256
    threshold: float | None = None    # keep clip_score >= threshold
    top_fraction: float | None = None  # keep the global top fraction
    decode: str = "auto"              # cpu (Pillow, exact) | gpu (nvjpeg, CPU fallback) | auto
    decode_threads: int = 0           # Pillow decode threads per model process (CPU path)
    tokenizer_backend: str = "auto"   # auto (Rust BPE if `tokenizers` is installed) | hf | python
    chunk_size: int = 0               # fixed model batch (0: 8 on CPU, 256 on CUDA), see scorer.py
    overlap: bool | None = None       # decode chunk k+1 (a thread; side CUDA stream) while the model runs
                                      # chunk k; None: on CUDA only
    quantile: str = "exact"           # top_fraction cut: exact | approximate
    num_quantiles: int = 10001        # resolution of the approximate quantile sketch
    embeddings_dir: str | None = None  # write L2-normalised embeddings as Parquet shards here
    embedding_shards: int = 16
    # Beam resource hint on the Score step (Dataflow right fitting puts it on GPU workers, the
    # other steps on CPU workers), e.g. "type:nvidia-l4;count:1;install-nvidia-driver"
    accelerator: str | None = None

    def __post_init__(self):
        if self.threshold is not None and self.top_fraction is not None:
            raise ValueError(f"scoring: set threshold ({self.threshold}) or top_fraction "
                             f"({self.top_fraction}), not both")
        if self.top_fraction is not None and not 0.0 < self.top_fraction <= 1.0:
            raise ValueError(f"scoring.top_fraction={self.top_fraction}: must be in (0, 1]")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"scoring.precision={self.precision!r}: choose fp32, bf16 or fp16")
        if self.decode not in ("cpu", "gpu", "auto"):
            raise ValueError(f"scoring.decode={self.decode!r}: choose cpu, gpu or auto")
        if self.tokenizer_backend not in ("auto", "hf", "python"):
            raise ValueError(f"scoring.tokenizer_backend={self.tokenizer_backend!r}: choose auto, hf or python")
        if self.quantile not in ("exact", "approximate"):
            raise ValueError(f"scoring.quantile={self.quantile!r}: choose exact or approximate")
        if not 1 <= self.min_batch_size <= self.max_batch_size:
            raise ValueError(f"scoring: need 1 <= min_batch_size ({self.min_batch_size}) "
                             f"<= max_batch_size ({self.max_batch_size})")
        if self.num_quantiles < 3 or self.embedding_shards < 1:
            raise ValueError(f"scoring: num_quantiles ({self.num_quantiles}) must be >= 3 and "
                             f"embedding_shards ({self.embedding_shards}) >= 1")
