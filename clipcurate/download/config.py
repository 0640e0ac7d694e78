from __future__ import annotations

from dataclasses import dataclass, field

RESIZE_MODES = ("no", "keep_ratio", "keep_ratio_largest", "center_crop", "border")
ENCODE_FORMATS = ("jpg", "png", "webp")


def _default_directives() -> list[str]:
    return ["noai", "noimageai", "noindex", "noimageindex"]


@dataclass
class DownloadConfig:
    """HTTP fetch, guards and image processing (option names follow img2dataset).

    Times are seconds, sizes bytes or pixels.  See docs/download.md for every field.
    """
    enabled: bool = True
    # -- fetch ------------------------------------------------------------------------
    timeout: float = 10.0           # total deadline per request attempt: connect + all reads
    max_bytes: int = 20_000_000     # byte cap, enforced while streaming (also on decoded gzip)
    retries: int = 2                # extra attempts after a timeout / 429 / 5xx / reset
    backoff_base: float = 0.5       # first backoff; doubles per attempt, with jitter in [0.5, 1.5)
    backoff_max: float = 10.0
    max_retry_after: float = 30.0   # a longer Retry-After gives up with the http status
    max_redirects: int = 5
    concurrency: int = 64           # requests in flight per worker process
    per_host_concurrency: int = 8
    per_host_rate: float = 0.0      # requests per second per host (token bucket); 0 = unlimited
    per_host_burst: int = 4         # token bucket size
    user_agent: str = "clipcurate/0.1 (+https://github.com/clipcurate/clipcurate)"
    max_url_length: int = 2048
    # -- guards -----------------------------------------------------------------------
    allow_loopback: bool = False    # only for tests and the demo: permits 127.0.0.0/8 and ::1
    host_overrides: list[str] = field(default_factory=list)  # "name=ip" pairs, like /etc/hosts
    dns_servers: list[str] = field(default_factory=list)     # "ip" or "ip:port"; [] = /etc/resolv.conf
    dns_timeout: float = 10.0       # cap of one shared lookup (each request's own deadline also bounds it)
    dns_cache_ttl: float = 300.0    # per-run DNS cache: answers kept this long
    dns_negative_ttl: float = 30.0  # failures and timeouts kept this long
    dns_cache_size: int = 10_000    # hosts (LRU)
    respect_robots: bool = True
    robots_max_bytes: int = 500_000
    robots_parse_seconds: float = 2.0     # parse budget (in a worker thread); over it: disallow all
    robots_cache_bytes: int = 64 << 20    # LRU by estimated size of the parsed rules
    respect_noai: bool = True       # X-Robots-Tag directives, checked before the body is read
    disallowed_header_directives: list[str] = field(default_factory=_default_directives)
    # -- image ------------------------------------------------------------------------
    image_size: int = 256
    resize_mode: str = "keep_ratio"  # no | keep_ratio | keep_ratio_largest | center_crop | border
    resize_only_if_bigger: bool = False
    encode_format: str = "jpg"       # jpg | png | webp
    encode_quality: int = 95         # jpg/webp quality; png: compression level 0-9
    keep_original: bool = False      # store the fetched bytes as they are (still checked)
    min_image_size: int = 0          # DataComp basic uses 200 (shorter side)
    max_aspect_ratio: float = 0.0    # 0 = no limit; DataComp basic uses 3
    max_pixels: int = 89_478_485     # refused from the header, before decode (bombs)
    # -- batching / resume ------------------------------------------------------------
    batch_size: int = 256            # records in flight per worker (>= concurrency keeps it busy)
    image_processes: int = -1        # image work in worker processes: -1 one per core, 0 threads here
    image_nice: int = 5              # niceness added to image processes: the fetch loop runs first when the
                                     # cores are saturated
    decode_threads: int = 2          # threads for cache I/O (and image work when image_processes=0)
    cache_dir: str | None = None     # fetch cache keyed by uid, for resume

    def __post_init__(self):
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"download.resize_mode={self.resize_mode!r}; choose from {', '.join(RESIZE_MODES)}")
        if self.encode_format not in ENCODE_FORMATS:
            raise ValueError(f"download.encode_format={self.encode_format!r}; choose from {', '.join(ENCODE_FORMATS)}")
        for name in ("timeout", "max_bytes", "concurrency", "per_host_concurrency", "image_size",
                     "max_pixels", "batch_size", "max_url_length", "decode_threads", "dns_timeout",
                     "dns_cache_size", "robots_parse_seconds", "robots_cache_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"download.{name} must be > 0, got {getattr(self, name)!r}")
        if self.image_processes < -1 or not 0 <= self.image_nice <= 19:
            raise ValueError(f"download.image_processes must be >= -1 (got {self.image_processes!r}) and "
                             f"download.image_nice in 0..19 (got {self.image_nice!r})")
        for name in ("retries", "max_redirects", "per_host_rate", "min_image_size", "max_aspect_ratio",
                     "backoff_base", "max_retry_after", "dns_cache_ttl", "dns_negative_ttl"):
            if getattr(self, name) < 0:
                raise ValueError(f"download.{name} must be >= 0, got {getattr(self, name)!r}")
        for item in self.host_overrides:
            if item.count("=") != 1 or not all(item.split("=")):
                raise ValueError(f"download.host_overrides item {item!r}: expected name=ip")
