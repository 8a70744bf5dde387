"""Hashing of source files, shared by download.py (a file pinned by its sha256) and manifest.py (an
archive pinned member by member). It sits below both so that neither has to import the other for
the error they raise alike or for how they read files."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

HASH_OF = ("file", "decompressed")
CHUNK_BYTES = 1 << 20  # read and hash files in blocks of this size


class ChecksumError(ValueError):
    """A file's content does not have the pinned sha256."""


def content_sha256(path: str | Path, of: str = "file", label: str | None = None) -> str:
    """sha256 of a file's bytes, or with ``of='decompressed'`` of its gzip-decompressed content."""
    if of not in HASH_OF:
        raise ValueError(f"sha256 of '{of}' is unknown, expected one of {HASH_OF}")
    h = hashlib.sha256()
    opener = gzip.open if of == "decompressed" else open
    try:
        with opener(path, "rb") as fh:
            while block := fh.read(CHUNK_BYTES):
                h.update(block)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ChecksumError(f"{label or path}: cannot decompress it to check its sha256 ({exc})") from exc
    return h.hexdigest()
