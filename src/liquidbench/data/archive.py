"""Safe zip extraction: every member is checked before anything is written.

Refused, with an error naming the archive and the member: absolute paths, drive letters, ``..``
components (zip-slip), links, truncated or corrupt archives (bad CRC) and files that are not zip
archives at all, and members beyond the limits (``Limits``: a member's size, the total size, and
the compression ratio of members over 1 MiB, against zip bombs; sizes are counted while reading
too, not only taken from the headers). Only the members asked for are extracted. Extraction goes to
a temporary directory that is renamed onto the destination only when complete.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterable

from ..io import umask


class ArchiveError(ValueError):
    """An archive that cannot or must not be extracted."""


@dataclass(frozen=True)
class Limits:
    """What an archive may hold. The shared copy of UCI HAR (26 members): largest member 15 MB, 190 MB
    in all, ratios up to 6.9 for members over 1 MiB (234 for a small, repetitive one)."""

    member_bytes: int = 512 * 2**20
    total_bytes: int = 2 * 2**30
    ratio: float = 100.0
    ratio_from_bytes: int = 2**20  # smaller members may compress as well as they like


LIMITS = Limits()


def check_size(archive: str, info: zipfile.ZipInfo, limits: Limits = LIMITS) -> None:
    """Refuse a member whose header announces more than the limits allow."""
    if info.file_size > limits.member_bytes:
        raise ArchiveError(f"archive {archive}: member '{info.filename}' has {info.file_size} bytes, more than "
                           f"the {limits.member_bytes} a member may have; refusing to extract")
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > limits.ratio_from_bytes and ratio > limits.ratio:
        raise ArchiveError(f"archive {archive}: member '{info.filename}' expands {ratio:.0f} times "
                           f"({info.compress_size} to {info.file_size} bytes), more than the {limits.ratio:.0f} "
                           "allowed (a zip bomb?); refusing to extract")


def copy_limited(src: BinaryIO, dst: BinaryIO, archive: str, info: zipfile.ZipInfo, budget: int,
                 limits: Limits = LIMITS) -> int:
    """Copy one member, counting its bytes: more than its header announced or than ``budget`` (what
    the total limit leaves) fails. Return the bytes copied."""
    done = 0
    while block := src.read(1 << 20):
        done += len(block)
        if done > info.file_size or done > budget:
            raise ArchiveError(f"archive {archive}: member '{info.filename}' holds more than its header announces "
                               f"or than the {limits.total_bytes} bytes an archive may expand to; refusing to extract")
        dst.write(block)
    return done


def _member_problem(name: str, info: zipfile.ZipInfo) -> str | None:
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        return "has an absolute path"
    if ".." in PurePosixPath(normalised).parts:
        return "has a '..' component that would escape the destination"
    mode = info.external_attr >> 16
    if mode and stat.S_ISLNK(mode):
        return "is a symbolic link"
    return None


def open_zip(path: str | Path, label: str | None = None) -> zipfile.ZipFile:
    """Open and fully check an archive (names and CRCs); the caller closes it. ``label`` names the
    archive in messages (e.g. what a downloaded temporary file is)."""
    path = Path(path)
    label = label or str(path)
    if not path.is_file():
        raise ArchiveError(f"archive {label} does not exist")
    if not zipfile.is_zipfile(path):
        raise ArchiveError(f"{label} is not a zip archive (or it is truncated: its central directory is missing)")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"{label} is not a readable zip archive: {exc}") from exc
    try:
        for info in zf.infolist():
            problem = _member_problem(info.filename, info)
            if problem:
                raise ArchiveError(f"archive {label}: member '{info.filename}' {problem}; refusing to extract")
        try:
            bad = zf.testzip()
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise ArchiveError(f"archive {label} is truncated or corrupt: {exc}") from exc
        if bad is not None:
            raise ArchiveError(f"archive {label} is corrupt: member '{bad}' fails its CRC check")
    except BaseException:
        zf.close()
        raise
    return zf


def safe_extract(archive: str | Path, dest: str | Path, members: Iterable[str] | None = None,
                 limits: Limits = LIMITS) -> Path:
    """Extract ``archive`` into the new directory ``dest`` (which must not exist); return it. With
    ``members`` (paths inside the archive) only those are extracted; the others are not written."""
    dest = Path(dest)
    if dest.exists():
        raise ArchiveError(f"extraction destination {dest} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    wanted = None if members is None else set(members)
    with open_zip(archive) as zf:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            root = tmp.resolve()
            chosen = [i for i in zf.infolist() if not i.is_dir() and (wanted is None or i.filename in wanted)]
            for info in chosen:
                check_size(str(archive), info, limits)
            total = 0
            for info in chosen:
                target = (tmp / info.filename).resolve()
                if root != target and root not in target.parents:  # defence in depth
                    raise ArchiveError(f"archive {archive}: member '{info.filename}' escapes the destination")
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    total += copy_limited(src, out, str(archive), info, limits.total_bytes - total, limits)
            os.chmod(tmp, 0o777 & ~umask())
            tmp.rename(dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest
