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
    # clipcurate | img2dataset | datacomp: file names, keys and side files of the tars
    # (see clipcurate.sinks.layouts and README "Layouts")
    layout: str = "clipcurate"

    def __post_init__(self):
        from clipcurate.sinks.layouts import check_layout
        check_layout(self.layout)
