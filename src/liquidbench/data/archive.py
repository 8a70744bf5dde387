"""Safe zip extraction: every member is checked before anything is written.

Refused, with an error naming the archive and the member: absolute paths, drive letters, ``..``
components (zip-slip), links, truncated or corrupt archives (bad CRC) and files that are not zip
archives at all. Extraction goes to a temporary directory that is renamed onto the destination
only when complete.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath


class ArchiveError(ValueError):
    """An archive that cannot or must not be extracted."""


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


def open_zip(path: str | Path) -> zipfile.ZipFile:
    """Open and fully check an archive (names and CRCs); the caller closes it."""
    path = Path(path)
    if not path.is_file():
        raise ArchiveError(f"archive {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise ArchiveError(f"{path} is not a zip archive (or it is truncated: its central directory is missing)")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"{path} is not a readable zip archive: {exc}") from exc
    try:
        for info in zf.infolist():
            problem = _member_problem(info.filename, info)
            if problem:
                raise ArchiveError(f"archive {path}: member '{info.filename}' {problem}; refusing to extract")
        try:
            bad = zf.testzip()
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise ArchiveError(f"archive {path} is truncated or corrupt: {exc}") from exc
        if bad is not None:
            raise ArchiveError(f"archive {path} is corrupt: member '{bad}' fails its CRC check")
    except BaseException:
        zf.close()
        raise
    return zf


def safe_extract(archive: str | Path, dest: str | Path) -> Path:
    """Extract ``archive`` into the new directory ``dest`` (which must not exist); return it."""
    dest = Path(dest)
    if dest.exists():
        raise ArchiveError(f"extraction destination {dest} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open_zip(archive) as zf:
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            root = tmp.resolve()
            for info in zf.infolist():
                target = (tmp / info.filename).resolve()
                if root != target and root not in target.parents:  # defence in depth
                    raise ArchiveError(f"archive {archive}: member '{info.filename}' escapes the destination")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            tmp.rename(dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest
