"""Fixtures of the analysis tests: one real synthetic audit per session (see synthetic_audit)."""

from __future__ import annotations

import pytest
from synthetic_audit import run_analysis

from llm2loss.analysis import AnalysisResult


@pytest.fixture(scope="session")
def audit_result() -> AnalysisResult:
    """The synthetic audit through the real analyse (every objective x arch, 3 members)."""
    return run_analysis()
