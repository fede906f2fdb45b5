"""CI is never green without a browser: with CI=true a missing Chromium fails the browser tests.

Runs the real report screenshot test in a child pytest whose PATH holds no Chromium, once with
CI=true (it must fail, naming the fix) and once without (it is skipped, as on a laptop).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_TEST = "tests/report/test_report_screenshot.py"


def _run_without_chromium(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(empty_bin)  # no chromium, no chromium-browser
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", SCREENSHOT_TEST, "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


@pytest.mark.parametrize("ci", ["true", "1"])
def test_missing_chromium_fails_the_screenshot_test_in_ci(tmp_path: Path, ci: str) -> None:
    result = _run_without_chromium(tmp_path, ci)
    assert result.returncode == 1, result.stdout[-2000:]
    assert re.search(r"\b\d+ (errors?|failed)\b", result.stdout), result.stdout[-2000:]
    assert not re.search(r"\b\d+ passed\b", result.stdout), result.stdout[-2000:]
    assert "CI=true, so the browser tests fail instead of skipping" in result.stdout
    assert "apt-get install chromium" in result.stdout


def test_missing_chromium_skips_the_screenshot_test_outside_ci(tmp_path: Path) -> None:
    result = _run_without_chromium(tmp_path, None)
    assert result.returncode == 0, result.stdout[-2000:]
    assert re.search(r"\b\d+ skipped\b", result.stdout), result.stdout[-2000:]
    assert "headless Chromium is not installed" in result.stdout
