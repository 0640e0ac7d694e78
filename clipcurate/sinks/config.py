from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SinkConfig:
    """Where and how the shards, manifest and report are written."""
    output: str = "out"
    samples_per_shard: int = 1000
    write_tar: bool = True
    write_parquet: bool = True
    keep_rejects: bool = False  # write dropped rows with their stage and reason
    report: bool = True
