from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BalanceConfig:
    """MetaCLIP curation: match captions against metadata, cap each entry at t."""
    enabled: bool = True
    metadata: str | None = None  # JSON list of strings (MetaCLIP format) or one entry per line
    t: int = 20000
    drop_unmatched: bool = True
