"""The smoke study's report in a real browser (headless Chromium): the landing page shows the
headline table and the claims, and a table and a figure open from the report's menu."""

from __future__ import annotations

import base64
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import missing_part, snakemake

pytestmark = pytest.mark.slow

INSTALL = "apt-get install chromium (Debian's package; .ci/run installs it)"

# A page that loads the report in a frame, waits for its app to render, then uses the report's own
# menu: Tables -> headline, Figures -> train_time. What it finds is written into #result as JSON
# (read back with --dump-dom). Needs --allow-file-access-from-files (both pages are file://).
DRIVER = """<!DOCTYPE html><html><body><pre id="result">pending</pre>
<iframe id="report" src="REPORT" style="width:1400px;height:900px"></iframe>
<script>
const out = {};
const wait = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, find, ms = 10000) {  // poll: the report's app renders asynchronously
  for (let t = 0; t < ms; t += 100) {
    try { const hit = find(); if (hit) return hit; } catch (e) {}
    await wait(100);
  }
  throw new Error("not found: " + what);
}
function doc() { return document.getElementById("report").contentDocument; }
async function clickText(text) {
  const hit = await until("menu item " + text, () => [...doc().querySelectorAll("a[href='#']")]
      .find((el) => el.textContent.trim() === text));
  hit.click();
}
async function viewRow(label) {
  const row = await until("result row " + label, () => [...doc().querySelectorAll("tr")]
      .find((tr) => [...tr.querySelectorAll("td")].some((td) => td.textContent.trim() === label)));
  row.querySelector("a[href='#']").click();
}
async function run() {
  const headline = await until("headline table", () => doc().querySelector(".liquidbench-table table"));
  const d = doc();
  out.landing_headers = headline ? [...headline.querySelectorAll("th")].map((th) => th.textContent) : [];
  out.landing_rows = headline ? headline.querySelectorAll("tbody tr").length : 0;
  out.headline_top = headline.getBoundingClientRect().top;  // in the frame's window: visible without scrolling
  out.landing_claims = [...d.querySelectorAll(".liquidbench-table li")].map((li) => li.textContent);
  await clickText("Tables");
  await viewRow("headline");
  const frame = await until("table page", () => doc().querySelector("iframe[src^='data:text/html']"));
  out.table_src = frame ? frame.getAttribute("src").slice(0, 200000) : null;
  // back to the landing page (a fresh load of the report), then the figures
  document.getElementById("report").contentWindow.location.reload();
  await wait(500);
  await until("menu after reload", () => doc().querySelector(".liquidbench-table table"));
  await clickText("Figures");
  await viewRow("train_time");
  const img = await until("figure", () => [...doc().querySelectorAll("img[src^='data:image/png']")]
      .find((i) => i.complete && i.naturalWidth > 0));
  out.figure = img ? {width: img.naturalWidth, height: img.naturalHeight} : null;
}
run().catch((e) => { out.error = String(e); }).finally(() => {
  document.getElementById("result").textContent = JSON.stringify(out);
});
</script></body></html>
"""


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        missing_part("headless Chromium", f"no chromium on PATH: {INSTALL}")
    return exe


def browse(exe: str, url: str, *args: str) -> str:
    proc = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--allow-file-access-from-files",
                           "--virtual-time-budget=30000", "--window-size=1400,1000", *args, url],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def open_report(workdir: Path, tmp: Path) -> dict:
    """What a user sees in the report of ``workdir`` (results/report.html), through Chromium;
    a screenshot of the landing page is kept in ``tmp``."""
    exe = chromium()
    report = (workdir / "results/report.html").resolve()
    browse(exe, report.as_uri(), f"--screenshot={tmp / 'landing.png'}")
    driver = tmp / "driver.html"
    driver.write_text(DRIVER.replace("REPORT", report.as_uri()))
    dom = browse(exe, driver.as_uri(), "--dump-dom")
    text = dom.split('<pre id="result">', 1)[1].split("</pre>", 1)[0]
    return json.loads(text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk (bytes 16..24, big-endian)."""
    return struct.unpack(">II", path.read_bytes()[16:24])


def smoke_datasets(workdir: Path) -> list[str]:
    """The data sets the smoke study ran (its study section: one row of panels each in train_time)."""
    return yaml.safe_load((workdir / ".test/config/config.yaml").read_text())["study"]["datasets"]


def test_report_opens_in_chromium_with_the_answers_first(smoke_run, tmp_path):
    chromium()
    if not (smoke_run / "results/report.html").exists():
        snakemake(smoke_run, "--configfile", ".test/config/config.yaml", "--report", "results/report.html")
    seen = open_report(smoke_run, tmp_path)
    assert "error" not in seen, seen.get("error")
    # the landing page: the headline table, one row per data set x hardware, and every claim's verdict
    assert seen["landing_headers"][:5] == ["data set", "hardware", "test metric", "fastest (train time [s])",
                                           "most accurate (test metric)"]
    assert 0 <= seen["headline_top"] < 900, seen["headline_top"]  # on the first screen, not cut off above it
    assert seen["landing_rows"] == 6  # sine on cpu and ddp-cpu-2; sine_forecast, traffic, har, har_inertial on cpu
    claims = {line.split(":")[0]: line for line in seen["landing_claims"]}
    assert "CfC trains faster than LTC" in claims and "DDP reduces training time" in claims
    assert all(any(v in line for v in ("true", "false", "not significant at 95 %", "undecidable"))
               for line in claims.values())
    # a table opens as a page of its own: the headline table's HTML
    src = seen["table_src"]
    assert src and src.startswith("data:text/html")
    assert "<table>" in base64.b64decode(src.split("base64,", 1)[1]).decode()
    # a figure opens as an image of the size it was drawn at: train_time.png's own pixels, one row
    # of panels per data set of the study
    from liquidbench.results.figures import size_px

    width, height = png_size(smoke_run / "results/figures/train_time.png")
    assert seen["figure"] == {"width": width, "height": height}
    assert (width, height) == size_px(len(smoke_datasets(smoke_run)))
    assert (tmp_path / "landing.png").stat().st_size > 10_000
