"""Writing one table three ways: CSV (every raw column), Markdown and LaTeX (formatted cells)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..io import atomic_path, write_text

NOT_AVAILABLE = "n/a"


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
    "±": r"$\pm$", "≥": r"$\geq$", "≤": r"$\leq$", "×": r"$\times$", "–": "--",
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


def write_table(raw: pd.DataFrame, display: pd.DataFrame, csv: str | Path, md: str | Path | None = None,
                tex: str | Path | None = None, title: str | None = None, notes: str | None = None) -> None:
    """``raw`` as CSV; ``display`` (formatted strings) as Markdown and LaTeX, each atomically."""
    with atomic_path(csv) as tmp:
        raw.to_csv(tmp, index=False)
    if md:
        write_text(md, to_markdown(display, title, notes))
    if tex:
        write_text(tex, to_latex(display, title, label=f"tab:{Path(csv).stem}"))
