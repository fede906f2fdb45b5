"""The rendered report in headless Chromium at 1400 and 800 px wide: the verdict block is on the
first screen, nothing but a table's own scroll box is wider than the window, the sections come in
reading order, and the figures render where the layout puts them.

The layout is measured by a copy of the page with tests/report/layout_probe.js injected (the report
itself carries no script); Chromium's --dump-dom gives back what it measured.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from synthetic_audit import RenderedReport

PROBE = Path(__file__).with_name("layout_probe.js")
FIRST_SCREEN = 1000
ORDER = ["overview", "findings", "regression", "validity", "familiarity", "discovery",
         "attributes", "comparisons", "summary"]
BLUE, ORANGE, RED = (0x2B, 0x6C, 0xB0), (0xC0, 0x56, 0x21), (0xC5, 0x30, 0x30)
AMBER = (0xDD, 0x6B, 0x20)  # the "medium" severity label

def _chromium(chromium: str, tmp_path: Path, width: int, height: int,
              *args: str) -> subprocess.CompletedProcess:
    # A private profile dir so the test never touches a user's browser profile.
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},{height}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _layout(chromium: str, rendered: RenderedReport, tmp_path: Path,
            width: int) -> dict[str, Any]:
    page = (rendered.out_dir / "index.html").read_text(encoding="utf-8")
    probe = tmp_path / f"probe-{width}.html"
    probe.write_text(page.replace("</body>", f"<script>{PROBE.read_text()}</script></body>"),
                     encoding="utf-8")
    result = _chromium(chromium, tmp_path, width, FIRST_SCREEN, "--virtual-time-budget=10000",
                       "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', result.stdout, re.S)
    assert found, f"chromium dumped no layout (rc {result.returncode}): {result.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")
                      .replace("&lt;", "<").replace("&gt;", ">"))


def _share(pixels: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int((np.abs(pixels.astype(np.int16) - colour).sum(axis=2) < 40).sum())


@pytest.mark.parametrize("width", [1400, 800])
def test_chromium_renders_the_report(chromium: str, rendered: RenderedReport, tmp_path: Path,
                                     width: int) -> None:
    layout = _layout(chromium, rendered, tmp_path, width)
    # nothing is wider than the window except inside a table's own scroll box
    assert layout["viewport"] == width and layout["scrollWidth"] <= width, layout["wide"]
    assert layout["wide"] == []
    assert layout["scrolls"] and all(overflow == "auto" for overflow, _ in layout["scrolls"])
    # the verdict block is on the first screen; sections come in reading order
    top, bottom = layout["verdict"]
    assert 0 < top < bottom <= FIRST_SCREEN
    sections = [name for name, _ in layout["sections"]]
    assert sections == ORDER
    assert [y for _, y in layout["sections"]] == sorted(y for _, y in layout["sections"])

    height = min(int(layout["height"]), 20000)
    shot = tmp_path / f"report-{width}.png"
    result = _chromium(chromium, tmp_path, width, height, f"--screenshot={shot}",
                       (rendered.out_dir / "index.html").resolve().as_uri())
    assert shot.is_file(), f"chromium wrote no screenshot (rc {result.returncode}): {result.stderr[-2000:]}"
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (height, width)
    assert pixels[:FIRST_SCREEN].std() > 20  # text and tables, not a blank first screen
    # the verdict's red "high" label is drawn inside the verdict block: the synthetic regression
    # is measured (attribute pairs' measured gaps became significant); the amber "medium" label
    # of the rise of the error rate is there too
    verdict = pixels[int(top):int(bottom)]
    assert _share(verdict, RED) > 100 and _share(verdict, AMBER) > 100
    # every figure is drawn, inside the window, where the layout puts it; familiarity shows
    # its blue (in-domain) and orange (out-of-domain) bars
    images = {name: box for name, *box in layout["images"]}
    assert set(images) == {"familiarity.png", "failures.png", "attributes.png",
                           "comparisons.png", "regression.png"}
    for name, (left, y, w, h, natural) in images.items():
        assert natural > 0 and w > 200 and left + w <= width, name
    left, y, w, h, _ = images["familiarity.png"]
    figure = pixels[int(y):int(y + h), int(left):int(left + w)]
    assert _share(figure, BLUE) > 2000 * (w / 1150) ** 2 and _share(figure, ORANGE) > 500 * (w / 1150) ** 2
