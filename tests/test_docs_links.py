"""Every relative link in the project's Markdown pages (README.md, docs/, config/README.md and the
other tracked pages) leads somewhere: the file exists, and a `#fragment` names a heading of the page
it points to (GitHub's anchors: lowercase, punctuation dropped, spaces as hyphens, -1, -2 for
repeats)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+<?(\S+?)>?(?:\s+.*)?$", re.M)
HTML = re.compile(r"""<(?:a|img)\s[^>]*?(?:href|src)=["']([^"']+)["']""", re.I)
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)


def pages() -> list[Path]:
    """The checkout's Markdown files (tracked, and new ones git does not ignore), or every *.md
    outside build folders where git is absent."""
    proc = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"], cwd=REPO,
                          capture_output=True, text=True)
    if proc.returncode == 0 and proc.stdout.strip():
        return [REPO / line for line in proc.stdout.splitlines() if (REPO / line).exists()]
    skip = {".venv", ".git", ".snakemake", "studies", "build", "node_modules"}
    return [p for p in REPO.rglob("*.md") if not skip & set(p.relative_to(REPO).parts)]


def prose(text: str) -> str:
    """The page without fenced code blocks and inline code (their brackets are not links)."""
    text = re.sub(r"^(```|~~~).*?^\1[ \t]*$", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The fragments a page answers to: its headings' anchors, and ids and names given in HTML."""
    found, seen = set(), {}
    text = re.sub(r"^(```|~~~).*?^\1[ \t]*$", "", page.read_text(), flags=re.M | re.S)
    for heading in re.findall(r"^#{1,6}\s+(.*?)\s*#*\s*$", text, re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    found |= set(re.findall(r"""<[^>]+\s(?:id|name)=["']([^"']+)["']""", text))
    return found


def broken_links(page: Path) -> list[str]:
    text = page.read_text()
    body = prose(text)
    targets = LINK.findall(body) + REFERENCE.findall(body) + HTML.findall(body)
    problems = []
    for target in targets:
        if EXTERNAL.match(target):
            continue
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            problems.append(f"{target}: no such file {dest}")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            problems.append(f"{target}: {dest.name} has no heading with the anchor #{fragment}")
    return problems


def test_every_relative_link_of_every_page_resolves():
    checked = pages()
    assert REPO / "README.md" in checked and any(p.parent == REPO / "docs" for p in checked)
    broken = {str(p.relative_to(REPO)): problems for p in checked if (problems := broken_links(p))}
    assert not broken, "broken links (fix the link or the heading it names):\n" + "\n".join(
        f"  {page}: {problem}" for page, problems in broken.items() for problem in problems)


def test_the_check_finds_a_missing_file_a_missing_heading_and_ignores_code(tmp_path):
    (tmp_path / "other.md").write_text("# Running on a cluster\n\n## Profiles: slurm & `local`\n\n## Profiles: slurm & `local`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\nSee [the cluster page](other.md#running-on-a-cluster), [profiles](other.md#profiles-slurm--local),"
        " [again](other.md#profiles-slurm--local-1) and [up](#title), ![a figure](fig.png), "
        "[web](https://example.org/x.md).\n\n"
        "[gone](missing.md) [no heading](other.md#nowhere) [ref]\n\n[ref]: other.md#also-nowhere\n\n"
        "```bash\necho [not a link](nothing.md)\n```\n`[not either](nothing.md)`\n")
    (tmp_path / "fig.png").write_bytes(b"\x89PNG")
    problems = broken_links(page)
    assert len(problems) == 3, problems
    assert problems[0].startswith("missing.md: no such file")
    assert problems[1] == "other.md#nowhere: other.md has no heading with the anchor #nowhere"
    assert problems[2] == "other.md#also-nowhere: other.md has no heading with the anchor #also-nowhere"


@pytest.mark.parametrize("heading, anchor", [
    ("Issue 34, second part: the kernels", "issue-34-second-part-the-kernels"),
    ("The `impl: fast` cells", "the-impl-fast-cells"),
    ("Running on a Slurm cluster", "running-on-a-slurm-cluster"),
    ("Speed — CPU (2 cores)", "speed--cpu-2-cores"),
    ("See [config](../config/README.md)", "see-config"),
])
def test_anchors_as_github_writes_them(heading, anchor):
    assert slug(heading) == anchor
