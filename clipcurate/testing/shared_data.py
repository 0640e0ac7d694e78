"""Where the tests (and the DFN experiments) find the third-party data of ``shared/data``.

The data lives beside the repository, not in it (``<repo>/../shared/data``).  A checkout
cloned elsewhere (``git clone /path/to/clipcurate /tmp/x/c``) has no ``shared/`` beside it,
so :func:`shared_data_dir` looks, in order, at:

1. ``$CLIPCURATE_SHARED_DATA``, when set (a folder holding ``img2dataset-tests/``, ...);
2. ``<repo>/../shared/data``;
3. for a clone of a local checkout, ``<origin>/../shared/data``, ``<origin>`` being the
   clone's ``remote.origin.url`` when that is a local folder.

If none exists the first candidate is returned, and tests that need the data fail or skip
naming that path.  Only where the inputs are read from depends on this: test outputs never
hold the path.
"""
from __future__ import annotations

import configparser
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _origin(repo: Path) -> Path | None:
    """The local folder a clone was made from (``remote "origin"`` url in .git/config), or None."""
    cfg = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        cfg.read(repo / ".git" / "config", encoding="utf-8")
        url = cfg.get('remote "origin"', "url", fallback="")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    url = url.removeprefix("file://")
    if not url or "://" in url or (":" in url.split("/", 1)[0] and not os.path.isabs(url)):
        return None  # a network remote (https://, ssh://, host:path)
    path = Path(url)
    return (repo / path).resolve() if not path.is_absolute() else path


def shared_data_dir(repo: Path = REPO) -> Path:
    """The ``shared/data`` folder (see the module docstring)."""
    env = os.environ.get("CLIPCURATE_SHARED_DATA")
    if env:
        return Path(env)
    candidates = [repo.parent / "shared" / "data"]
    origin = _origin(repo)
    if origin is not None:
        candidates.append(origin.parent / "shared" / "data")
    return next((c for c in candidates if c.is_dir()), candidates[0])


SHARED_DATA = shared_data_dir()
