"""Where a study's real data sets come from: one ``Source`` per file (or verified folder) under
data/raw/, shared by every data set that names it.

A data set's ``source`` is pinned either by the file's sha256 (``sha256``, over the file or, with
``sha256_of: decompressed``, over its decompressed content) or, for an archive, by a manifest of
its members' sha256 (``manifest``); then data/raw/ holds the folder of the verified members, named
after the manifest's top folder. The workflow's download rules take their arguments from here.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from .download import check_file_name
from .manifest import ManifestError, manifest_root


@dataclass(frozen=True, kw_only=True)
class Source:
    """A data set's `source:` entry (config/README.md)."""

    url: str
    file: str | None = None  # the original file's name, when the URL's last component is not it
    sha256: str | None = None
    sha256_of: str | None = None  # file or decompressed; "file" where a sha256 pins it
    manifest: str | None = None
    mirror_names: tuple[str, ...] = ()

    @classmethod
    def from_entry(cls, name: str, entry: dict) -> Source:
        """Data set ``name``'s `source:` mapping; a file pinned by its sha256 has it over the file
        unless it says otherwise, and an archive pinned by a manifest has no sha256 at all."""
        if "manifest" in entry and ("sha256" in entry or "sha256_of" in entry):
            raise ValueError(
                f"config key 'datasets.{name}.source': pinned by `manifest` (each member of an archive), it takes "
                "no `sha256` or `sha256_of` (those pin one file)"
            )
        entry = {**entry, "mirror_names": tuple(entry.get("mirror_names", ()))}
        if "manifest" not in entry:
            entry.setdefault("sha256_of", "file")
        source = cls(**entry)
        source.check_names(name)
        return source

    def check_names(self, name: str) -> None:
        """Data set ``name``'s file names must each stay in their folder: the file's becomes
        data/raw/NAME and logs/download/NAME.log, and every name is looked up in the mirrors. One
        taken from the URL is checked decoded (..%2F..%2Fx.csv.gz is ../../x.csv.gz); refused here,
        before any job runs, naming the key to fix."""
        key = f"config key 'datasets.{name}.source"
        if self.file is not None:
            check_file_name(self.file, f"{key}.file'")
        else:
            try:
                check_file_name(self.file_name, f"{key}.url' (its last path component, decoded)")
            except ValueError as exc:
                raise ValueError(f"{exc}; or give the file's own name as `source.file`") from None
        for other in self.mirror_names:
            check_file_name(other, f"{key}.mirror_names'")

    @property
    def file_name(self) -> str:
        """The original file name: `file`, else the URL's last path component, decoded."""
        return self.file or unquote(urlparse(self.url).path.rsplit("/", 1)[-1])

    @property
    def origin(self) -> tuple:
        """What two data sets sharing this source must agree on (all but the local file name)."""
        return (self.url, self.sha256, self.sha256_of, self.manifest, self.mirror_names)

    def also_names(self) -> str:
        """--also-name options: other names under which a mirror may hold the archive (re-packed copies)."""
        return " ".join(f"--also-name {shlex.quote(n)}" for n in self.mirror_names)


def manifest_path(path: str, workflow_dir: str) -> str:
    """A source manifest as given (relative to the working directory), else in the workflow's folder."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    in_workflow = os.path.join(workflow_dir, path)
    return in_workflow if os.path.exists(in_workflow) else path


def source_key(name: str, source: Source, workflow_dir: str) -> str:
    """What a source becomes under data/raw/: its file, or for a source pinned by a manifest the
    folder of its verified members (the manifest's top folder, e.g. `UCI HAR Dataset`)."""
    if source.manifest is None:
        return source.file_name
    try:
        return manifest_root(manifest_path(source.manifest, workflow_dir))
    except ManifestError as exc:
        raise ValueError(f"config key 'datasets.{name}.source.manifest': {exc}") from None


def collect_sources(datasets: dict, workflow_dir: str) -> dict[str, Source]:
    """data/raw/ name -> Source, over every data set entry with a `source`; data sets that share a
    source (e.g. two HAR protocols) must agree on where it comes from."""
    sources: dict[str, Source] = {}
    for name, dataset in datasets.items():
        if dataset.get("source") is None:
            continue
        source = Source.from_entry(name, dataset["source"])
        key = source_key(name, source, workflow_dir)
        if key in sources and sources[key].origin != source.origin:
            raise ValueError(
                f"config key 'datasets.{name}.source': file '{key}' is also the source of another data set "
                "with a different url, sha256, sha256_of, manifest or mirror_names; they must agree"
            )
        sources[key] = source
    return sources


def data_mirrors(data_mirror) -> list[str]:
    """config `data_mirror` (null, one directory or a list) as a list of directories."""
    return [] if data_mirror is None else [data_mirror] if isinstance(data_mirror, str) else list(data_mirror)
