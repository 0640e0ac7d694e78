"""clipcurate.safety: the ``safety.*`` config section (every check off by default)."""
from __future__ import annotations

from dataclasses import dataclass, field

FACE_MODES = ("off", "detect", "blur", "drop")
FACE_DETECTORS = ("nudenet", "haar")
NSFW_MODELS = ("nudenet",)


@dataclass
class SafetyConfig:
    """Trust and safety checks (docs/safety.md).  Each list is ``name=path`` or a bare path
    (its file name is then its name); the manifest records each list's name, file name and
    sha256, never its absolute path.

    Text-first (stage ``safety_text``, before download, so a blocked URL is never fetched):
    ``url_blocklists`` and ``optout_lists`` (rules: exact URL, ``domain:`` host and its
    subdomains, ``registered:`` registered domain, ``prefix:`` URL prefix), and the caption's
    toxicity score (``toxic_text``).  After download (stage ``safety_image``): ``hash_lists``
    (MD5 / SHA-1 / SHA-256 of the bytes), ``pdq_lists`` (PDQ perceptual hashes within
    ``pdq_distance`` bits), the NSFW score and faces.
    """
    url_blocklists: list[str] = field(default_factory=list)   # dropped as ``blocklisted``
    optout_lists: list[str] = field(default_factory=list)     # dropped as ``opted_out``
    hash_lists: list[str] = field(default_factory=list)       # md5 / sha1 / sha256 hex, one a line
    pdq_lists: list[str] = field(default_factory=list)        # PDQ hex (64 digits), one a line
    pdq_distance: int = 31          # Hamming distance <= this (of 256 bits) is a match (Meta's default)
    pdq_bands: int = 16             # multi-index: 256 bits in this many bands (16 x 16 bits, as Meta's MIH)
    pdq_min_quality: int = 0        # images whose PDQ quality is below this are not PDQ-matched
    toxic_text: bool = False        # score captions (column ``toxic_score``, alt-profanity-check)
    toxic_threshold: float | None = None  # drop as ``toxic_text`` when toxic_score >= this
    nsfw: bool = False              # score images (column ``nsfw_score``)
    nsfw_model: str = "nudenet"     # nudenet (NudeNet's bundled 320n ONNX detector, CPU)
    nsfw_threshold: float | None = None  # drop as ``nsfw`` when nsfw_score >= this
    nsfw_clip_head: str = ""        # .npz MLP on the scoring model's image embeddings (column nsfw_clip_score)
    nsfw_clip_threshold: float | None = None  # drop as ``nsfw`` (stage safety_clip) when nsfw_clip_score >= this
    faces: str = "off"              # off | detect (boxes only) | blur (boxes + blur) | drop
    face_detector: str = "nudenet"  # nudenet (bundled YOLOv8n, AGPL-3.0) | haar (OpenCV's frontal cascade, BSD-style)
    face_min_score: float = 0.3     # nudenet: face detections scoring below this are ignored
    face_min_size: int = 24         # haar: smallest face side in pixels the cascade looks for
    face_min_neighbors: int = 5     # haar: overlapping detections needed (higher: fewer, surer)
    blur_strength: float = 0.5      # Gaussian sigma = this x the box's shorter side / 2
    batch_size: int = 64

    def __post_init__(self):
        if self.faces not in FACE_MODES:
            raise ValueError(f"safety.faces={self.faces!r}; choose from {', '.join(FACE_MODES)}")
        if self.face_detector not in FACE_DETECTORS:
            raise ValueError(f"safety.face_detector={self.face_detector!r}; choose from {', '.join(FACE_DETECTORS)}")
        if self.nsfw_model not in NSFW_MODELS:
            raise ValueError(f"safety.nsfw_model={self.nsfw_model!r}; choose from {', '.join(NSFW_MODELS)}")
        if not 0 <= self.pdq_distance < 256:
            raise ValueError(f"safety.pdq_distance={self.pdq_distance} must be in [0, 256)")
        if self.pdq_bands not in (8, 16, 32):
            raise ValueError(f"safety.pdq_bands={self.pdq_bands}; choose from 8, 16, 32 (bands of 32, 16, 8 bits)")
        if self.pdq_distance // self.pdq_bands > 3:
            raise ValueError(f"safety.pdq_distance={self.pdq_distance} with pdq_bands={self.pdq_bands}: "
                             f"radius {self.pdq_distance // self.pdq_bands} per band is above 3; raise pdq_bands")
        if not 0 <= self.pdq_min_quality <= 100:
            raise ValueError(f"safety.pdq_min_quality={self.pdq_min_quality} must be in [0, 100]")
        if self.nsfw_clip_threshold is not None and not self.nsfw_clip_head:
            raise ValueError("safety.nsfw_clip_threshold needs safety.nsfw_clip_head (a checkpoint path)")
        for name in ("toxic_threshold", "nsfw_threshold", "nsfw_clip_threshold"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise ValueError(f"safety.{name}={v} must be in [0, 1] (or null: score only)")
        if not 0.0 <= self.face_min_score <= 1.0:
            raise ValueError(f"safety.face_min_score={self.face_min_score} must be in [0, 1]")
        if self.face_min_size < 1 or self.face_min_neighbors < 0 or self.blur_strength <= 0:
            raise ValueError(f"safety.face_min_size={self.face_min_size} must be >= 1, face_min_neighbors="
                             f"{self.face_min_neighbors} >= 0, blur_strength={self.blur_strength} > 0")
        if self.batch_size < 1:
            raise ValueError(f"safety.batch_size={self.batch_size} must be >= 1")

    @property
    def text_enabled(self) -> bool:
        return bool(self.url_blocklists or self.optout_lists or self.toxic_text or self.toxic_threshold is not None)

    @property
    def image_enabled(self) -> bool:
        return bool(self.hash_lists or self.pdq_lists or self.nsfw_on or self.faces != "off")

    @property
    def toxic_on(self) -> bool:
        return self.toxic_text or self.toxic_threshold is not None

    @property
    def nsfw_on(self) -> bool:
        return self.nsfw or self.nsfw_threshold is not None
