from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DedupeConfig:
    """Exact and near-duplicate removal, and evaluation-set decontamination."""
    url: bool = True                # exact normalized URL
    content: bool = True            # exact image sha256
    caption_near: bool = False      # MinHash-LSH on captions
    image_near: bool = False        # perceptual hash
    mode: str = "both"              # both | image | caption
    jaccard_threshold: float = 0.8
    num_perm: int = 128
    shingle: str = "word"           # word | char
    ngram: int = 3
    phash_distance: int = 4
    eval_sets: list[str] = field(default_factory=list)  # image folders or webdataset tars
