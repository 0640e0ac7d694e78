from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DownloadConfig:
    """HTTP fetch, guards and image processing (option names follow img2dataset)."""
    enabled: bool = True
    timeout: float = 10.0           # total deadline per request: connect + all reads
    max_bytes: int = 20_000_000     # byte cap, enforced while streaming
    retries: int = 2
    max_redirects: int = 5
    concurrency: int = 64           # per worker process
    per_host_concurrency: int = 8
    per_host_rate: float = 0.0      # requests per second per host; 0 = unlimited
    user_agent: str = "clipcurate/0.1 (+https://github.com/clipcurate/clipcurate)"
    allow_loopback: bool = False    # only for tests and the demo
    respect_robots: bool = True
    respect_noai: bool = True
    image_size: int = 256
    resize_mode: str = "keep_ratio"  # no | keep_ratio | keep_ratio_largest | center_crop | border
    encode_format: str = "jpg"       # jpg | png | webp
    encode_quality: int = 95
    keep_original: bool = False
    min_image_size: int = 0          # DataComp basic uses 200
    max_aspect_ratio: float = 0.0    # 0 = no limit; DataComp basic uses 3
    max_pixels: int = 89_478_485     # Pillow's default bomb limit
    cache_dir: str | None = None     # fetch cache keyed by uid, for resume
