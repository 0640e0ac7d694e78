from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BalanceConfig:
    """MetaCLIP curation: match captions against metadata, cap each entry at t.

    Worldwide metadata (a JSON object language -> entries, MetaCLIP 2) routes each caption
    by its ``language`` (set by the text filter) to that language's entries; ``t`` is then
    English's cap and every other language gets the t with the same tail proportion.
    """
    enabled: bool = True
    metadata: str | None = None  # JSON list of strings (MetaCLIP format), JSON object lang -> list, or one per line
    t: int = 20000
    drop_unmatched: bool = True
    # worldwide metadata only:
    tail_proportion: float | None = None  # p; None: English's tail proportion at t (MetaCLIP 2)
    unknown_language: str = "other"  # "other": match a language without metadata against the "other" list
    #                                   (dropped as no_metadata_language if there is none); "drop": always drop
    lang_map: list[str] = field(default_factory=list)  # extra "lid=metadata" language codes, e.g. ["yue=zh"]
