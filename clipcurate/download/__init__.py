"""clipcurate.download: fetch candidate images safely and check them.

Pure core: :class:`Fetcher` and ``clipcurate.download.fetch.fetch`` (HTTP), :func:`process_image` (checks,
re-encode), :func:`apply_outcome` and :class:`DownloadRunner` (records in, statuses out).
Beam: :class:`Download`.  Guide: docs/download.md.  Names load lazily, so importing the
config section (``clipcurate.download.config``) does not import aiohttp or Beam.
"""
from __future__ import annotations

import importlib

_WHERE = {
    "Download": "transform", "DownloadConfig": "config", "DownloadRunner": "runner", "FetchCache": "cache",
    "FetchResult": "fetch", "Fetcher": "fetch", "check_url": "fetch",
    "GuardedResolver": "guard", "PrivateAddressError": "guard", "address_allowed": "guard",
    "ImageResult": "image", "process_image": "image", "sniff": "image", "apply_outcome": "runner",
    "ImagePool": "pool",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'clipcurate.download' has no attribute {name!r}")
    return getattr(importlib.import_module(f"clipcurate.download.{_WHERE[name]}"), name)
