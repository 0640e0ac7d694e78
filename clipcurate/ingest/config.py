from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IngestConfig:
    """Where candidates come from and how to read them (img2dataset-style column options)."""
    inputs: list[str] = field(default_factory=list)  # paths or globs
    input_format: str = "auto"  # auto | parquet | csv | tsv | jsonl | warc | wat
    url_col: str = "url"        # matched case-insensitively when the exact name is absent
    caption_col: str = "caption"
    columns: list[str] | None = None  # names for a headerless csv/tsv
    extra_cols: list[str] = field(default_factory=list)  # carried through into `extra`
    encoding: str = "utf-8"
