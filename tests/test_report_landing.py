"""The report's landing page (workflow/report/workflow.rst) as Snakemake renders it (jinja2, then
docutils): it embeds the headline table of the study's own root, not the working directory's."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from docutils.core import publish_parts
from jinja2 import Environment

LANDING = Path(__file__).resolve().parent.parent / "workflow" / "report" / "workflow.rst"
STUDY = {"datasets": ["sine"], "models": ["cfc"], "hardware": ["cpu"], "seeds": [0]}


def render(root: str | None, written: bool) -> str:
    """The landing page's HTML body, rendered with Snakemake's settings (snakemake/report)."""
    config = {"study": STUDY} | ({"root": root} if root is not None else {})
    files = [SimpleNamespace(name="headline.html")] if written else []
    text = Environment(trim_blocks=True, lstrip_blocks=True).from_string(LANDING.read_text()).render(
        snakemake=SimpleNamespace(config=config), categories={}, files=files)
    return publish_parts(text, writer_name="html")["html_body"]


def test_the_landing_page_embeds_the_headline_of_the_study_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for root, marker in (("studies/local", "LOCAL-HEADLINE"), (".", "CWD-HEADLINE")):
        table = tmp_path / root / "results/tables/headline.html"
        table.parent.mkdir(parents=True, exist_ok=True)
        table.write_text(f"<div class='liquidbench-table'>{marker}</div>")
    html = render("studies/local", written=True)
    assert "LOCAL-HEADLINE" in html and "CWD-HEADLINE" not in html
    assert "CWD-HEADLINE" in render(".", written=True)
    assert "CWD-HEADLINE" in render(None, written=True)  # no root: the working directory
    # the page starts at its top (Snakemake centres it vertically, which hides a tall page's top)
    assert "align-items: flex-start" in html


def test_before_the_study_ran_the_landing_page_says_so_with_the_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    html = render("studies/local", written=False)
    assert "not written yet" in html and "studies/local/results/tables/headline.html" in html
