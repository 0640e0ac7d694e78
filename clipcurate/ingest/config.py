from __future__ import annotations

from dataclasses import dataclass, field

ON_BAD_FILE = ("skip", "fail")


@dataclass
class IngestConfig:
    """Where candidates come from and how to read them (img2dataset-style column options)."""
    inputs: list[str] = field(default_factory=list)  # paths or globs
    input_format: str = "auto"  # auto | parquet | csv | tsv | jsonl | warc | wat | mmc4
    url_col: str = "url"        # matched case-insensitively when the exact name is absent;
    caption_col: str = "caption"  # jsonl/parquet: a path like meta.url or images[*].alt
    columns: list[str] | None = None  # names for a headerless csv/tsv
    extra_cols: list[str] = field(default_factory=list)  # carried through into `extra`
    encoding: str = "utf-8"
    on_bad_file: str = "skip"   # skip: an unreadable file is a counted drop; fail: stop the run

    def __post_init__(self):
        if self.on_bad_file not in ON_BAD_FILE:
            raise ValueError(f"ingest.on_bad_file must be one of {', '.join(ON_BAD_FILE)}, "
                             f"got {self.on_bad_file!r}")
