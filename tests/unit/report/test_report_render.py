"""The HTML report renders in a real browser: headless Chromium takes a screenshot, and the charts are in it.

Skipped when no ``chromium`` is installed (Debian: ``apt-get install -y chromium``); CI usually has none. Set
EVALKIT_SCREENSHOT_DIR to keep the PNG for a look.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import report_runs
from evalkit.report.svg import DIAGNOSIS_COLORS, METHOD_COLORS
from evalkit.report.writer import write_reports

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 1280, 2000


def _rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (apt-get install -y chromium)")
def test_html_report_renders_in_headless_chromium(tmp_path):
    image_lib = pytest.importorskip("PIL.Image")
    run = report_runs.write_run(tmp_path / "run")
    page = write_reports(run).html
    png = tmp_path / "report.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and png.exists(), proc.stderr[-2000:]
    if os.environ.get("EVALKIT_SCREENSHOT_DIR"):
        shutil.copy(png, Path(os.environ["EVALKIT_SCREENSHOT_DIR"]) / "report.png")
    image = image_lib.open(png).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    colors = {c for _, c in image.getcolors(maxcolors=1 << 20)}
    assert len(colors) > 100  # text, tables and charts, not a blank or error page
    # solid fills drawn by the SVG charts: the method bars and the stacked diagnosis bars
    for name in ("gptq", "broken", "none"):
        assert _rgb(METHOD_COLORS[name]) in colors, name
    for name in ("ok", "special_tokens_only", "no_box"):
        assert _rgb(DIAGNOSIS_COLORS[name]) in colors, name
