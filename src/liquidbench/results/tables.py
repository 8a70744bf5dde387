"""Writing one table four ways: CSV (every raw column), Markdown, LaTeX and HTML (formatted cells).

Every CSV written here carries its format in a column ``table_format`` (``FORMAT``, its one home):
a reader of tables written by another liquidbench (``liquidbench compare`` reading a reference)
checks it and refuses a table of another format instead of misreading its columns. Raise FORMAT
when a column a reader relies on changes its name or meaning.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..io import atomic_path, write_text

NOT_AVAILABLE = "n/a"
# the format of every table CSV (the column FORMAT_COLUMN), see the module docstring
FORMAT = 1
FORMAT_COLUMN = "table_format"


def num(x, digits: int = 4) -> str:
    """A number with ``digits`` significant digits, or n/a for NaN / None."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)) or pd.isna(x):
        return NOT_AVAILABLE
    return f"{float(x):.{digits}g}"


def estimate(mean, std=float("nan"), lo=float("nan"), hi=float("nan"), n=None, median=None, gmean=None) -> str:
    """'mean ± std [ci_low, ci_high] median m n=k' with the parts that exist; with ``gmean`` (a
    positive quantity, whose interval belongs to the geometric mean)
    'gm g [ci_low, ci_high] mean ± std median m n=k'."""
    if pd.isna(mean):
        return NOT_AVAILABLE if not n else f"{NOT_AVAILABLE} n={n}"
    interval = "" if pd.isna(lo) or pd.isna(hi) else f" [{num(lo, 3)}, {num(hi, 3)}]"
    spread = "" if pd.isna(std) else f" ± {num(std, 2)}"
    if gmean is not None:
        text = f"gm {num(gmean)}{interval} mean {num(mean)}{spread}"
    else:
        text = f"{num(mean)}{spread}{interval}"
    if median is not None and not pd.isna(median):
        text += f" median {num(median)}"
    if n is not None:
        text += f" n={int(n)}"
    return text


def compact(centre, lo=float("nan"), hi=float("nan"), n=None, digits: int = 4) -> str:
    """A short cell for the report and Markdown: 'centre [ci_low, ci_high] n=k' (the full statistics
    stay in the CSV)."""
    if centre is None or pd.isna(centre):
        return NOT_AVAILABLE if not n else f"{NOT_AVAILABLE} n={int(n)}"
    text = num(centre, digits)
    if not (pd.isna(lo) or pd.isna(hi)):
        text += f" [{num(lo, 3)}, {num(hi, 3)}]"
    return text + (f" n={int(n)}" if n is not None and not pd.isna(n) else "")


BEST = "★"  # marks the best value of a data set in a formatted table


def drop_empty(display: pd.DataFrame, keep: tuple[str, ...] = ()) -> pd.DataFrame:
    """``display`` without the columns that have no data in any row (every cell n/a)."""
    empty = [c for c in display.columns if c not in keep and len(display)
             and display[c].astype(str).str.startswith(NOT_AVAILABLE).all()]
    return display.drop(columns=empty)


def to_markdown(display: pd.DataFrame, title: str | None = None, notes: str | None = None) -> str:
    lines = [f"### {title}", ""] if title else []
    cols = [str(c) for c in display.columns]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for row in display.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    if not len(display):
        lines.append("| " + " | ".join(["—"] * len(cols)) + " |")
    if notes:
        lines += ["", notes]
    return "\n".join(lines) + "\n"


_TEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$", "★": r"$\star$", "≥": r"$\geq$", "≤": r"$\leq$", "×": r"$\times$", "–": "--",
}


def tex_escape(text) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def to_latex(display: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""
    cols = list(display.columns)
    lines = [r"\begin{table}[htbp]", r"\centering", r"\small"]
    if caption:
        lines.append(rf"\caption{{{tex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{'l' * len(cols)}}}", r"\toprule",
              " & ".join(tex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for row in display.itertuples(index=False):
        lines.append(" & ".join(tex_escape(v) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_html(display: pd.DataFrame, title: str | None = None, notes: str | None = None, level: int = 3) -> str:
    """A self-contained HTML fragment (heading, table, notes) for the report; the best value of a data
    set (cells with BEST) in bold."""
    from html import escape

    def cell(v):
        text = escape(str(v)).replace("; ", "<br>")  # one item a line
        return f"<b>{text}</b>" if BEST in text else text

    head = "".join(f"<th>{escape(str(c))}</th>" for c in display.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in display.itertuples(index=False))
    if not len(display):
        body = f'<tr><td colspan="{len(display.columns)}">no rows in this study</td></tr>'
    parts = ['<div class="liquidbench-table">']
    if title:
        parts.append(f"<h{level}>{escape(title)}</h{level}>")
    parts.append(f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table>")
    for block in (notes or "").split("\n\n"):
        lines = [line for line in block.splitlines() if line.strip()]
        if lines and all(line.startswith("- ") for line in lines):
            items = "".join(f"<li>{_inline(escape(line[2:]))}</li>" for line in lines)
            parts.append(f"<ul>{items}</ul>")
        elif lines:
            parts.append(f"<p><small>{_inline(escape(' '.join(lines)))}</small></p>")
    return "\n".join(parts + ["</div>"]) + "\n"


def _inline(text: str) -> str:
    """Markdown's **bold** as HTML."""
    import re

    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)


# the landing page's column is narrow (max-w-lg): as wide as the screen allows where it holds a table
STYLE = ("<style>.prose.max-w-lg:has(.liquidbench-table){max-width:72rem}"
         ".liquidbench-table table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
         ".liquidbench-table th,.liquidbench-table td{border:1px solid #ccc;padding:2px 6px;text-align:left;"
         "vertical-align:top}.liquidbench-table th{background:#f0f0f0}</style>")


def html_page(fragment: str) -> str:
    """The HTML file of a table: its fragment with the style, shown by the report as a page of its own
    and embedded as it is in the report's landing page (workflow/report/workflow.rst)."""
    return f'<meta charset="utf-8">\n{STYLE}\n{fragment}'


def write_table(raw: pd.DataFrame, display: pd.DataFrame, csv: str | Path, md: str | Path | None = None,
                tex: str | Path | None = None, title: str | None = None, notes: str | None = None,
                html: str | Path | None = None) -> None:
    """``raw`` as CSV, with its format (column ``table_format``); ``display`` (formatted strings) as
    Markdown, LaTeX and an HTML page, each atomically."""
    with atomic_path(csv) as tmp:
        raw.assign(**{FORMAT_COLUMN: FORMAT}).to_csv(tmp, index=False)
    if md:
        write_text(md, to_markdown(display, title, notes))
    if tex:
        write_text(tex, to_latex(display, title, label=f"tab:{Path(csv).stem}"))
    if html:
        write_text(html, html_page(to_html(display, title, notes)))
