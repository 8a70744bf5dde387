"""Sources pinned member by member: a manifest of sha256 per file of an archive's folder.

Some data sets cannot be pinned by their archive's bytes: the original archive's hash may be
unknown, and a re-packed archive or an extracted copy holds the same files under other bytes. A
manifest pins the files instead. It is a checksum file in the format ``sha256sum`` writes (one
``<64 hex digits>  <path>`` line per member, all under one top folder, e.g. ``UCI HAR Dataset/``),
so ``sha256sum -c`` checks an extracted copy too.

``copy_members`` takes the top folder's files from a zip archive or from an already extracted
folder, hashes each one while copying it, and publishes the copy only when complete:

- a listed member whose content differs fails, naming the member, the expected and the actual hash;
- a listed member that the copy lacks is reported (a protocol that needs it fails later, when it
  is prepared, with a message that says what to do);
- a member that is present but not listed is accepted with a warning that names its sha256, as an
  unpinned source is;
- entries outside the top folder (e.g. ``__MACOSX/``) are not copied, and are named in a warning;
- an archive's members are held to the limits of archive.py (size, total, compression ratio);
- a folder that holds a symbolic link is refused, naming the link: a copy is made of the mirror's
  own files only, never of what a link points to (which may lie anywhere, readable by its owner only).

Copies get the permissions the umask gives, less those the mirror's file lacks (a file readable by
its owner only stays so).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterator

from ..io import umask
from .archive import LIMITS, ArchiveError, check_size, open_zip
from .checksum import CHUNK_BYTES, ChecksumError

log = logging.getLogger(__name__)

_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


class ManifestError(ValueError):
    """A manifest that cannot be read, or a copy that holds none of its members."""


@dataclass(frozen=True)
class Manifest:
    path: Path
    root: str  # the one top folder of every member, e.g. "UCI HAR Dataset"
    members: dict[str, str]  # path below root -> sha256 (lower case)


def read_manifest(path: str | Path) -> Manifest:
    """Parse and check a sha256sum-format manifest; errors name the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {path} does not exist")
    members: dict[str, str] = {}
    roots = set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None:
            raise ManifestError(
                f"manifest {path} line {number}: expected '<sha256, 64 hex digits>  <path>' "
                f"(the format sha256sum writes), got {line!r}"
            )
        digest, name = m.group(1).lower(), m.group(2)
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts or len(parts) < 2 or "\\" in name:
            raise ManifestError(
                f"manifest {path} line {number}: member '{name}' must be a relative path inside one top folder"
            )
        rel = "/".join(parts[1:])
        if rel in members:
            raise ManifestError(f"manifest {path} line {number}: member '{name}' is listed twice")
        roots.add(parts[0])
        members[rel] = digest
    if not members:
        raise ManifestError(f"manifest {path} lists no member")
    if len(roots) != 1:
        raise ManifestError(f"manifest {path}: members must share one top folder, found {sorted(roots)}")
    return Manifest(path, roots.pop(), members)


def manifest_root(path: str | Path) -> str:
    """The top folder of a manifest's members (the name of the verified copy's folder)."""
    return read_manifest(path).root


Opener = Callable[[], BinaryIO]


def _zip_members(source: Path, root: str, skipped: list[str], label: str) -> Iterator[tuple[str, Opener, int]]:
    with open_zip(source, label) as zf:
        for info in zf.infolist():
            name = info.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if info.is_dir():
                continue
            if len(parts) < 2 or parts[0] != root:
                skipped.append(name)
                continue
            check_size(label, info)
            yield "/".join(parts[1:]), (lambda info=info: zf.open(info)), 0o666


def _folder_members(source: Path, label: str) -> Iterator[tuple[str, Opener, int]]:
    for folder, dirs, files in os.walk(source):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            if path.is_symlink():
                raise ManifestError(
                    f"{label}: '{path.relative_to(source)}' is a symbolic link (to {os.readlink(path)}); a mirror "
                    "folder must hold the files themselves. Replace the link by a copy of the file."
                )
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            yield path.relative_to(source).as_posix(), (lambda path=path: open(path, "rb")), path.stat().st_mode


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished folder onto ``out``; an older copy there is removed only afterwards."""
    if not out.exists():
        tmp.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
    out.rename(old / "copy")
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def copy_members(source: str | Path, manifest: Manifest, out: str | Path, label: str) -> dict:
    """Copy the top folder of ``source`` (a zip archive, or the extracted folder itself) to the
    folder ``out``, verified against ``manifest``; return what was verified, missing or unlisted.
    ``label`` names the source in messages. On any failure ``out`` is left as it was."""
    source, out = Path(source), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    skipped: list[str] = []
    members = (_folder_members(source, label) if source.is_dir()
               else _zip_members(source, manifest.root, skipped, label))
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    verified, unlisted, total, mask = [], {}, 0, umask()
    try:
        for rel, opener, mode in members:
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with opener() as src, open(target, "wb") as dst:
                while block := src.read(CHUNK_BYTES):
                    total += len(block)
                    if total > LIMITS.total_bytes:
                        raise ArchiveError(f"{label}: its members hold more than the {LIMITS.total_bytes} bytes "
                                           f"a source may have (at member '{manifest.root}/{rel}'); refusing it")
                    digest.update(block)
                    dst.write(block)
            os.chmod(target, mode & 0o666 & ~mask)
            actual = digest.hexdigest()
            expected = manifest.members.get(rel)
            if expected is None:
                unlisted[rel] = actual
            elif actual != expected:
                raise ChecksumError(
                    f"checksum mismatch for member '{manifest.root}/{rel}' of {label}: expected sha256 "
                    f"{expected} (manifest {manifest.path}), got {actual}"
                )
            else:
                verified.append(rel)
        if not verified:
            raise ManifestError(
                f"{label} holds none of the {len(manifest.members)} members listed in manifest {manifest.path} "
                f"(expected files under '{manifest.root}/'): is it the right archive?"
            )
        for p in [tmp, *tmp.rglob("*")]:
            if p.is_dir():
                os.chmod(p, 0o777 & ~mask)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    missing = sorted(set(manifest.members) - set(verified))
    for rel, actual in sorted(unlisted.items()):
        log.warning(
            "%s: member '%s/%s' is not in manifest %s, so its content is NOT verified; its sha256 is %s. "
            "After checking it against a copy you trust, add this line to the manifest: %s  %s/%s",
            label, manifest.root, rel, manifest.path, actual, actual, manifest.root, rel,
        )
    if missing:
        log.warning(
            "%s lacks %d of the %d members listed in manifest %s: %s. A data set that needs one of them "
            "fails when it is prepared.",
            label, len(missing), len(manifest.members), manifest.path,
            ", ".join(f"'{manifest.root}/{m}'" for m in missing),
        )
    if skipped:
        log.warning("%s: %d entries outside '%s/' were not copied: %s", label, len(skipped), manifest.root,
                    ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else ""))
    log.info("%s: %d members verified against manifest %s into %s", label, len(verified), manifest.path, out)
    return {"verified": sorted(verified), "missing": missing, "unlisted": unlisted, "skipped": skipped}
