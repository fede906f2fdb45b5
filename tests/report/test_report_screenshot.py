"""Screenshot of the rendered report in headless Chromium: the page and its figures render."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
from PIL import Image
from synthetic_audit import RenderedReport


def test_chromium_renders_the_report(chromium: str, rendered: RenderedReport, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    index = (rendered.out_dir / "index.html").resolve()
    # A private profile dir so the test never touches a user's browser profile.
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
               "--window-size=1200,3000", index.as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert shot.is_file(), f"chromium wrote no screenshot (rc {result.returncode}): {result.stderr[-2000:]}"
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 3000)
    pixels = np.asarray(image, dtype=float)
    assert pixels.std() > 20  # text, tables and figures, not a blank page
    # The familiarity figure's blue and orange bars are on the page (drawn from the PNG data URI).
    blue = (np.abs(pixels - [0x2B, 0x6C, 0xB0]).sum(axis=2) < 40).sum()
    orange = (np.abs(pixels - [0xC0, 0x56, 0x21]).sum(axis=2) < 40).sum()
    assert blue > 2000 and orange > 500
