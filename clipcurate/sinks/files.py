"""Atomic file writes through Beam's FileSystems (local paths, gs://, s3://, hdfs://...)."""
from __future__ import annotations

import hashlib
import posixpath

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems


def join(*parts: str) -> str:
    return FileSystems.join(*parts) if parts else ""


def write_atomic(path: str, data: bytes) -> str:
    """Write ``data`` to a temp name beside ``path``, then rename; return its sha256.

    A killed run never leaves a half-written file under the final name.  The temp
    name is derived from the content hash, so a retried bundle writes the same file.
    """
    digest = hashlib.sha256(data).hexdigest()
    directory, name = posixpath.split(path) if "://" in path else _split_local(path)
    tmp = join(directory, f".tmp-{digest[:16]}-{name}")
    _mkdirs(directory)
    with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as fh:
        fh.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])
    return digest


def write_parquet_atomic(path: str, table) -> str:
    """Write a pyarrow Table as zstd Parquet with :func:`write_atomic`; return its sha256."""
    import io

    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return write_atomic(path, buf.getvalue())


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as fh:
        return fh.read()


def _split_local(path: str) -> tuple[str, str]:
    import os
    directory, name = os.path.split(os.path.abspath(path))
    return directory, name


def _mkdirs(directory: str) -> None:
    if FileSystems.exists(directory):
        return
    try:
        FileSystems.mkdirs(directory)
    except IOError:  # another worker created it meanwhile
        if not FileSystems.exists(directory):
            raise
