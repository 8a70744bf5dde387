"""Fetching source files: an offline mirror first, then the network, always verified by sha256
(of the file, or with a manifest of every member of an archive: see manifest.py).

A file is looked up in each mirror directory by its original name (directly inside it or one
directory level below), else downloaded over https with retries and exponential back-off. It is
written under a temporary name beside the destination and renamed only once its sha256 matches,
so a failure of any kind leaves nothing behind. For gzip files whose bytes differ between copies
(re-compressed mirrors) the hash can be taken over the decompressed content instead.

The hashing and ``ChecksumError`` live in checksum.py, which manifest.py shares; they stay
importable from here, where callers have always found them.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from ..io import atomic_path, umask
from .checksum import CHUNK_BYTES, HASH_OF, ChecksumError, content_sha256
from .manifest import copy_members, read_manifest

log = logging.getLogger(__name__)

USER_AGENT = "liquidbench-download"


class DownloadError(OSError):
    """The source could not be obtained (network and mirrors exhausted)."""


def check_file_name(name: str, what: str) -> str:
    """``name`` if it is one file name, else ValueError naming ``what``. A source's name is joined
    to data/raw/, logs/download/ and each mirror folder: an empty name, '.', '..', a separator or a
    NUL byte would leave the folder (a URL ending in ..%2F..%2Fx.csv.gz decodes to ../../x.csv.gz)."""
    if (not name or name in {".", ".."} or any(c in name for c in "/\\\0")
            or os.path.normpath(name) != name):
        raise ValueError(f"{what}: {name!r} is not a file name that stays in its folder; expected one name "
                         "without '/', '\\' or NUL bytes, other than '.' and '..'")
    return name


def file_name(url: str) -> str:
    """The original file name of a URL: its last path component, percent-decoded, and one name
    (check_file_name)."""
    name = urllib.parse.unquote(urllib.parse.urlparse(url).path.rsplit("/", 1)[-1])
    return check_file_name(name, f"the file name of URL {url!r} (its last path component, decoded)")


def verify(path: Path, expected: str | None, of: str, label: str) -> str:
    """Check ``path`` against the pinned hash; return the actual hash. ``label`` names the file."""
    actual = content_sha256(path, of, label)
    what = "decompressed content" if of == "decompressed" else "file"
    if expected is None:
        log.warning(
            "%s: no sha256 is pinned, so its content is NOT verified; sha256 of its %s is %s. "
            "After checking it against a copy you trust, pin it in the data set's `source.sha256`.",
            label, what, actual,
        )
    elif actual != expected.lower():
        raise ChecksumError(
            f"checksum mismatch for {label}: expected sha256 {expected.lower()} of its {what}, got {actual}"
        )
    return actual


def find_in_mirrors(names: str | Sequence[str], mirrors: Sequence[str | Path],
                    folder: str | None = None, problems: dict[str, str] | None = None) -> Path | None:
    """The first file ``mirror/NAME`` or ``mirror/*/NAME`` (or, with ``folder``, the directory
    ``mirror/FOLDER`` or ``mirror/*/FOLDER``) that exists and can be read: mirrors in the order
    given, in each one the names in order, then the folder, directly inside before one level below.

    A mirror is a convenience, never the only way: one that is missing, not a directory or cannot
    be read, and a file in one that cannot be read, is skipped with a warning so that the next
    candidate (and then the network) is tried; ``problems`` collects each as path -> why, for the
    error that follows if nothing is left."""
    problems = {} if problems is None else problems
    names = [names] if isinstance(names, str) else list(names)
    wanted = [(n, Path.is_file) for n in names] + ([(folder, Path.is_dir)] if folder else [])
    for mirror in map(Path, mirrors):
        why = _mirror_problem(mirror)
        if why:
            _skip(mirror, why, problems)
            continue
        try:
            for candidate in _candidates(mirror, wanted):
                why = _unreadable(candidate)
                if why is None:
                    return candidate
                _skip(candidate, f"cannot be read ({why})", problems)
        except OSError as exc:  # a mirror whose entries cannot be looked at (no search permission)
            _skip(mirror, f"cannot be read ({exc.strerror or exc})", problems)
    return None


def _candidates(mirror: Path, wanted: list) -> Iterator[Path]:
    """What a mirror holds of ``wanted`` (name, kind test), in find_in_mirrors' order."""
    for name, kind in wanted:
        if kind(mirror / name):
            yield mirror / name
    for name, kind in wanted:
        yield from sorted(p for p in mirror.glob(f"*/{_glob_escape(name)}") if kind(p))


def _mirror_problem(mirror: Path) -> str | None:
    """Why a data mirror cannot be searched (as a phrase: "is not a directory"), else None."""
    try:
        if not mirror.is_dir():
            return "is not a directory" if mirror.exists() else "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    why = _unreadable(mirror)
    return f"cannot be read ({why})" if why else None


def _unreadable(path: Path) -> str | None:
    """Why ``path`` (a mirror, or a file or folder in one) cannot be read, else None. Found by
    reading it: its mode alone does not tell (root reads a file of mode 000, NFS may refuse more)."""
    try:
        if path.is_dir():
            with os.scandir(path) as entries:
                next(entries, None)
        else:
            with open(path, "rb") as fh:
                fh.read(1)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _skip(path: Path, why: str, problems: dict[str, str]) -> None:
    log.warning("data mirror: %s %s; skipped, trying the next mirror (then the network)", path, why)
    problems[str(path)] = why


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _fetch(url: str, dest: Path, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as resp, open(dest, "wb") as out:
        expected = resp.headers.get("Content-Length")
        shutil.copyfileobj(resp, out, CHUNK_BYTES)
        size = out.tell()
    if expected is not None and size != int(expected):
        raise DownloadError(f"{url}: connection closed after {size} of {expected} bytes")


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500 or exc.code in (408, 429)
    return isinstance(exc, (urllib.error.URLError, OSError, TimeoutError))


def offline_help(name: str, mirrors: Sequence[str | Path], folder: str | None = None,
                 problems: dict[str, str] | None = None) -> str:
    """What to do when neither a mirror nor the network gave the file: every mirror searched, and
    why each one skipped (find_in_mirrors' ``problems``) could not be used."""
    looked = ", ".join(str(m) for m in mirrors) if mirrors else "none configured"
    skipped = "; skipped: " + ", ".join(f"{path} {why}" for path, why in problems.items()) if problems else ""
    what = f"'{name}'" + (f" or an extracted folder '{folder}/'" if folder else "")
    return (
        f"no mirror holds {what} (mirrors searched: {looked}{skipped}). On a machine without network access, "
        f"copy '{name}' (under exactly this name) into a directory and set `data_mirror: DIR` in the "
        f"config, or pass `--config data_mirror=DIR` to snakemake; a list of directories is searched in order."
    )


def _fetch_with_retries(url: str, dest: Path, name: str, mirrors: list, folder: str | None,
                        retries: int, backoff_s: float, timeout_s: float,
                        problems: dict[str, str] | None = None) -> None:
    errors = []
    for attempt in range(1, retries + 2):
        try:
            _fetch(url, dest, timeout_s)
            return
        except Exception as exc:  # noqa: BLE001 - classified just below
            if not _retryable(exc):
                raise DownloadError(f"download of {url} failed: {exc}"
                                    + (f"; {offline_help(name, mirrors, folder, problems)}" if problems else "")) from exc
            errors.append(f"attempt {attempt}: {exc}")
            if attempt > retries:
                raise DownloadError(
                    f"download of {url} failed after {attempt} attempts ({'; '.join(errors)}); "
                    + offline_help(name, mirrors, folder, problems)
                ) from exc
            wait = backoff_s * 2 ** (attempt - 1)
            log.warning("download of %s failed (%s); retrying in %.1fs", url, exc, wait)
            time.sleep(wait)


def download(
    url: str,
    out: str | Path,
    sha256: str | None,
    sha256_of: str = "file",
    mirrors: Iterable[str | Path] = (),
    name: str | None = None,
    retries: int = 4,
    backoff_s: float = 2.0,
    timeout_s: float = 60.0,
    manifest: str | Path | None = None,
    other_names: Iterable[str] = (),
) -> dict:
    """Obtain the file of ``url`` as ``out``, verified; return where it came from and its hash.

    With ``manifest`` the source is an archive pinned member by member (see manifest.py): ``out``
    becomes the verified folder of its members, and a mirror may hold the archive under its name
    or one of ``other_names`` (a re-packed archive), or the extracted folder itself.
    """
    if urllib.parse.urlparse(url).scheme != "https":
        raise ValueError(f"source URL must use https, got {url!r}")
    if sha256_of not in HASH_OF:
        raise ValueError(f"--sha256-of must be one of {HASH_OF}, got {sha256_of!r}")
    if sha256 is not None and (len(sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha256)):
        raise ValueError(f"sha256 must be 64 hexadecimal digits, got {sha256!r}")
    if manifest is not None and sha256 is not None:
        raise ValueError("a source is pinned either by its sha256 or by a manifest of its members, not both")
    out = Path(out)
    # the name is looked up in each mirror folder and names the temporary file beside ``out``
    name = file_name(url) if name is None else check_file_name(name, "--name")
    other_names = [check_file_name(n, "--also-name") for n in other_names]
    mirrors = list(mirrors)
    problems: dict[str, str] = {}
    if manifest is not None:
        return _download_members(url, out, name, other_names, manifest, mirrors, retries, backoff_s, timeout_s,
                                 problems)

    local = find_in_mirrors(name, mirrors, problems=problems)
    if local is not None:
        with atomic_path(out) as tmp:
            shutil.copyfile(local, tmp)
            actual = verify(tmp, sha256, sha256_of, f"'{name}' from mirror {local}")
            os.chmod(tmp, local.stat().st_mode & 0o666 & ~umask())  # no wider than the mirror's file
        log.info("took %s from mirror %s (sha256 of %s %s)", name, local, sha256_of, actual)
        return {"source": str(local), "sha256": actual, "sha256_of": sha256_of}

    with atomic_path(out) as tmp:
        _fetch_with_retries(url, tmp, name, mirrors, None, retries, backoff_s, timeout_s, problems)
        actual = verify(tmp, sha256, sha256_of, f"'{name}' downloaded from {url}")
    log.info("downloaded %s (sha256 of %s %s)", url, sha256_of, actual)
    return {"source": url, "sha256": actual, "sha256_of": sha256_of}


def _download_members(url: str, out: Path, name: str, other_names: list[str], manifest_path: str | Path,
                      mirrors: list, retries: int, backoff_s: float, timeout_s: float,
                      problems: dict[str, str]) -> dict:
    manifest = read_manifest(manifest_path)
    if out.name != manifest.root:
        raise ValueError(f"--out must be a folder named '{manifest.root}' (the top folder of manifest "
                         f"{manifest.path}), got {out}")
    local = find_in_mirrors([name, *other_names], mirrors, folder=manifest.root, problems=problems)
    if local is not None:
        kind = "folder" if local.is_dir() else "archive"
        report = copy_members(local, manifest, out, f"{kind} {local} (mirror)")
        return {"source": str(local), **report}
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:  # the archive itself is not kept: only its verified members
        _fetch_with_retries(url, Path(tmp), name, mirrors, manifest.root, retries, backoff_s, timeout_s, problems)
        report = copy_members(tmp, manifest, out, f"'{name}' downloaded from {url}")
    finally:
        os.unlink(tmp)
    return {"source": url, **report}
