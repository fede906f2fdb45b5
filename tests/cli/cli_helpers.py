"""Helpers of the command-line tests: the one-line error check and release.json files."""

from __future__ import annotations

from pathlib import Path

from typer.testing import Result

from llm2loss.config import ReleaseSpec

LIMIT = 160


def assert_one_line_error(result: Result, *needles: str) -> str:
    """The command failed with exactly one `error:` line on stderr, naming every needle."""
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def write_release_file(release: ReleaseSpec, folder: Path) -> Path:
    """release.json of `release` in `folder` (as a user would hand it to `llm2loss register`)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "release.json"
    path.write_text(release.model_dump_json(indent=2), encoding="utf-8")
    return path
