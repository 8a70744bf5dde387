"""A reference folder's layout and its record (reference.json), checked: what the workflow reads
when it starts (workflow/rules/common.smk, the compare job's inputs), so plain Python without
pandas. liquidbench.results.reference exports such folders and compares with them
(docs/reference.md)."""

from __future__ import annotations

import re
from pathlib import Path

from ..io import read_json

# the format of a reference folder (reference.json's "format"); raise it when the layout changes
FORMAT = 1
REFERENCE_FILE = "reference.json"
# what compare reads of each side: the statistics, the machines, and every run's recorded settings
COMPARED_TABLES = ("summary", "provenance", "runs")
SHA256 = re.compile(r"[0-9a-f]{64}")


def is_reference(folder: str | Path) -> bool:
    return (Path(folder) / REFERENCE_FILE).is_file()


def read_info(folder: str | Path) -> dict:
    """A reference folder's reference.json, checked: a mapping of this format with every exported
    file's sha256 (_check_hashes)."""
    path = Path(folder) / REFERENCE_FILE
    try:
        info = read_json(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"reference {path}: cannot read it as JSON ({exc})") from exc
    if not isinstance(info, dict):
        raise ValueError(f"reference {path}: expected a JSON object, got {type(info).__name__}")
    if info.get("format") != FORMAT:
        raise ValueError(f"reference {path}: format {info.get('format')!r}, expected {FORMAT} (a reference of "
                         "another liquidbench: export it again, or compare with that version)")
    _check_hashes(path, info.get("files"))
    return info


def _check_hashes(path: Path, files) -> None:
    """reference.json's ``files``: a non-empty mapping of each exported file (its path in the folder)
    to its sha256. Without it compare could not tell an edited reference from the exported one, so a
    reference lacking it is refused instead of being compared as if it were intact."""
    expected = ("expected 'files': a mapping of every exported file (its path in the folder) to its sha256, as "
                "export-reference writes it; export the reference again from its results folder")
    if not isinstance(files, dict) or not files:
        found = ("no 'files'" if files is None else "an empty 'files' mapping" if isinstance(files, dict)
                 else f"'files' that is a {type(files).__name__}, not a mapping")
        raise ValueError(f"reference {path}: {found}, so its files cannot be checked; {expected}")
    bad = [rel for rel, sha in files.items() if not (isinstance(sha, str) and SHA256.fullmatch(sha))]
    if bad:
        more = f" ({len(bad)} such entries)" if len(bad) > 1 else ""
        raise ValueError(f"reference {path}: 'files' gives {bad[0]!r} {files[bad[0]]!r}, not a sha256 (64 lowercase "
                         f"hex digits){more}; {expected}")


def side_files(folder: str | Path, role: str = "reference") -> list[str]:
    """The files compare reads of a side (reference.json of a reference folder, and the compared
    tables); a folder that is neither a reference nor a results folder is refused, naming what it lacks."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{role} {folder}: not a folder; expected a results folder (tables/summary.csv) or a "
                         f"reference folder ({REFERENCE_FILE})")
    tables = [str(folder / "tables" / f"{name}.csv") for name in COMPARED_TABLES]
    if is_reference(folder):
        read_info(folder)
        return [str(folder / REFERENCE_FILE), *tables]
    if not (folder / "tables").is_dir():
        raise ValueError(f"{role} {folder}: not a results folder or a reference folder; expected tables/ (a results "
                         f"folder) or {REFERENCE_FILE} (a reference folder, liquidbench export-reference)")
    return tables
