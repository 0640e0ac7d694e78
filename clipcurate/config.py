"""One typed config for the whole run.

Each stage owns its section (a dataclass in its subpackage); :class:`RunConfig` composes
them.  A config loads from TOML or JSON, takes ``section.key=value`` overrides from the
command line, and is dumped whole into the manifest with its hash.  Unknown keys are
an error that lists the valid ones.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clipcurate.balancing.config import BalanceConfig
from clipcurate.dedupe.config import DedupeConfig
from clipcurate.download.config import DownloadConfig
from clipcurate.filters.config import TextFilterConfig
from clipcurate.ingest.config import IngestConfig
from clipcurate.safety.config import SafetyConfig
from clipcurate.scoring.config import ScoringConfig
from clipcurate.sinks.config import SinkConfig

# Stages a run can stop after (``until``), in pipeline order.  MetaCLIP matching and
# balancing are one step ("balance"): balancing needs the global match counts.
STAGES = ("ingest", "filter", "safety_text", "dedupe_url", "near_dup_caption", "balance", "download",
          "safety_image", "dedupe_content",
          "near_dup", "decontam", "score", "safety_clip", "score_filter")


@dataclass
class RunConfig:
    seed: int = 0
    until: str | None = None  # stop after this stage and write its records as Parquet
    after: str | None = None  # inputs are an earlier run's until_<after> Parquet: start after that stage
    ingest: IngestConfig = field(default_factory=IngestConfig)
    filter: TextFilterConfig = field(default_factory=TextFilterConfig)
    balance: BalanceConfig = field(default_factory=BalanceConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    dedupe: DedupeConfig = field(default_factory=DedupeConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)

    def __post_init__(self):
        if self.until is not None and self.until not in STAGES:
            raise ValueError(f"until={self.until!r} is not a stage; choose from {', '.join(STAGES)}")
        if self.after is not None:
            if self.after not in STAGES[:-1]:
                raise ValueError(f"after={self.after!r}: choose a stage from {', '.join(STAGES[:-1])}")
            if self.until is not None and STAGES.index(self.until) <= STAGES.index(self.after):
                raise ValueError(f"until={self.until!r} must be a stage after after={self.after!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        return _build(cls, data, "")

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        data = read_config_file(path)
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as e:
            raise ValueError(f"config {path}: {e}") from e

    def with_overrides(self, overrides: list[str]) -> "RunConfig":
        """Apply ``section.key=value`` strings (value parsed as JSON, else taken as a string)."""
        data = self.to_dict()
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r}: expected section.key=value")
            dotted, raw = item.split("=", 1)
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            node = data
            keys = dotted.split(".")
            for k in keys[:-1]:
                if not isinstance(node.get(k), dict):
                    raise ValueError(f"override {item!r}: {k!r} is not a config section")
                node = node[k]
            if keys[-1] not in node:
                raise ValueError(f"override {item!r}: unknown key {keys[-1]!r}; valid: {', '.join(sorted(node))}")
            node[keys[-1]] = value
        return RunConfig.from_dict(data)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw table of a .toml or .json config file (a syntax error names the file)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            return json.loads(text)
        if path.suffix == ".toml":
            return _tomllib().loads(text)
    except ValueError as e:  # JSONDecodeError, TOMLDecodeError
        raise ValueError(f"config {path}: {e}") from None
    raise ValueError(f"config {path}: use a .toml or .json file")


def _tomllib():
    if sys.version_info >= (3, 11):
        import tomllib
        return tomllib
    import tomli
    return tomli


def _build(cls, data: dict[str, Any], where: str):
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'config'}: expected a table/object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where or 'config'}: unknown key(s) {unknown}; valid: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        typ = hints[name]
        if dataclasses.is_dataclass(typ):
            kwargs[name] = _build(typ, value, f"{where}{name}.")
        else:
            kwargs[name] = _coerce(value, typ, f"{where}{name}")
    return cls(**kwargs)


def _coerce(value: Any, typ: Any, where: str) -> Any:
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, args[0], where) for v in value] if args else list(value)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(f"{where}: expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value.lstrip("-").isdigit()):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if typ is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if typ is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    return value
