from __future__ import annotations

from dataclasses import dataclass, field

MODES = ("both", "image", "caption")
SHINGLES = ("char", "word")
SCHEMES = ("affine32", "legacy")
URL_KEEP = ("random", "smallest_uid")  # keep rules (clipcurate/dedupe/keep.py, which checks against this)


@dataclass
class DedupeConfig:
    """Exact and near-duplicate removal, and evaluation-set decontamination.

    Defaults (see docs/dedupe.md for why): captions are compared as sets of character
    4-grams of the normalised text (NFKC, lower case, punctuation removed, whitespace
    collapsed) with 128 MinHash permutations and a Jaccard threshold of 0.5; images by
    64-bit pHash with Hamming distance <= 6; a pair is a near-duplicate in mode ``both``
    when image and caption both match.
    """
    url: bool = True                # exact normalized URL (False: keep every caption of an image URL)
    url_keep: str = "random"        # which caption of a URL survives: random (seeded draw, MetaCLIP 2) | smallest_uid
    content: bool = True            # exact image sha256
    caption_near: bool = False      # MinHash-LSH on captions, before download
    image_near: bool = False        # near-dup after download (pHash and/or caption, by mode)
    mode: str = "both"              # both | image | caption
    # caption MinHash
    jaccard_threshold: float = 0.5
    num_perm: int = 128
    shingle: str = "char"           # char | word
    ngram: int = 4
    minhash_seed: int = 1           # datasketch's default seed: same permutations as MinHash()
    minhash_scheme: str = "affine32"  # datasketch 2.0 default; "legacy" = datasketch < 2.0
    lsh_bands: int = 0              # 0: chosen from the threshold as datasketch's MinHashLSH does
    lsh_rows: int = 0
    # image pHash
    phash_distance: int = 6         # Hamming distance <= this is a near-duplicate
    phash_bands: int = 0            # 0: min(phash_distance + 1, 4) bands (pigeonhole + radius)
    # candidate buckets and components
    bucket_all_pairs: int = 200     # a bucket up to this size is compared all-pairs; beyond: a window
    bucket_window: int = 50         # ... each member against the next this many (sorted)
    cc_rounds: int = 12             # large-star/small-star rounds (a 30,000-node random path needs 12)
    # decontamination
    eval_sets: list[str] = field(default_factory=list)  # image folders, globs or webdataset tars
    eval_phash_distance: int = 6
    eval_embedding_threshold: float = 0.0  # > 0 and an embedding model: also drop by cosine >= this
    eval_embedding_model: str = ""   # open_clip architecture name ("" = off)
    eval_embedding_pretrained: str = ""  # local checkpoint path for that model
    batch_size: int = 1024          # captions per vectorised signature batch

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"dedupe.mode={self.mode!r}; choose from {', '.join(MODES)}")
        if self.url_keep not in URL_KEEP:
            raise ValueError(f"dedupe.url_keep={self.url_keep!r}; choose from {', '.join(URL_KEEP)}")
        if self.shingle not in SHINGLES:
            raise ValueError(f"dedupe.shingle={self.shingle!r}; choose from {', '.join(SHINGLES)}")
        if self.minhash_scheme not in SCHEMES:
            raise ValueError(f"dedupe.minhash_scheme={self.minhash_scheme!r}; choose from {', '.join(SCHEMES)}")
        if not 0.0 < self.jaccard_threshold <= 1.0:
            raise ValueError(f"dedupe.jaccard_threshold={self.jaccard_threshold} must be in (0, 1]")
        if self.num_perm < 2 or self.ngram < 1:
            raise ValueError(f"dedupe.num_perm={self.num_perm} must be >= 2 and ngram={self.ngram} >= 1")
        if (self.lsh_bands > 0) != (self.lsh_rows > 0) or self.lsh_bands * self.lsh_rows > self.num_perm:
            raise ValueError(f"dedupe.lsh_bands={self.lsh_bands} x lsh_rows={self.lsh_rows} must both be set "
                             f"(or both 0) with bands*rows <= num_perm={self.num_perm}")
        if not 0 <= self.phash_distance < 64 or not 0 <= self.eval_phash_distance < 64:
            raise ValueError(f"dedupe.phash_distance={self.phash_distance} / eval_phash_distance="
                             f"{self.eval_phash_distance} must be in [0, 64)")
        if self.phash_bands < 0 or self.phash_bands > 64:
            raise ValueError(f"dedupe.phash_bands={self.phash_bands} must be in [0, 64]")
        if self.cc_rounds < 1:
            raise ValueError(f"dedupe.cc_rounds={self.cc_rounds} must be >= 1")
