"""Fixtures of the report tests: a real synthetic audit, a previous version, the rendered report.

The synthetic world lives in tests/analysis/synthetic_audit.py (shared with the analysis tests).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))

from synthetic_audit import (ConceptEncoder, RenderedReport, make_data,  # noqa: E402
                             run_analysis)

from llm2loss.config import AuditSettings, DiagnoserSettings  # noqa: E402
from llm2loss.regression import compare_versions, regression_phrases  # noqa: E402
from llm2loss.report import render_report  # noqa: E402


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> RenderedReport:
    """The report of the synthetic audit, with a regression report against an earlier version."""
    small = AuditSettings(diagnosers=DiagnoserSettings(objectives=["rank", "familiarity"],
                                                       archs=["mlp"], n_members=3),
                          pairs=[("an email offering a mortgage refinance",
                                  "a personal email between friends")])
    current = run_analysis(settings=small.model_copy(update={"phrases": ["<script>alert(1)</script>"]}))
    earlier = make_data(seed=1)
    earlier["loss_train"] = np.random.default_rng(3).permutation(earlier["loss_train"])
    previous = run_analysis(settings=small, **earlier)
    metrics = current.metrics
    metrics["summary"].update({
        "model": "spam-filter", "version": "v2", "dataset": "synthetic-mail",
        "dataset_fingerprint": "sha256:abc123", "encoder": "concept-encoder",
        "encoder_fingerprint": "f00d", "task": "binary", "samples_used": 500,
        "samples_skipped": 2, "skipped_reasons": {"<b>unreadable</b> file": 2},
        "split": {"train": 350, "test": 150}, "stage_seconds": {"embed": 1.5, "losses": 0.25},
        "created_at": "2025-01-01T00:00:00+00:00"})
    previous.metrics["summary"].update({"model": "spam-filter", "version": "v1"})
    phrases = regression_phrases(previous.metrics, metrics)
    regression = compare_versions(prev_diagnosers=previous.diagnosers,
                                  prev_metrics=previous.metrics,
                                  cur_diagnosers=current.diagnosers, cur_metrics=metrics,
                                  phrase_embeddings=ConceptEncoder().encode_text(phrases),
                                  phrases=phrases)
    out_dir = tmp_path_factory.mktemp("report")
    files = render_report(metrics, out_dir, regression=regression)
    return RenderedReport(metrics, regression, out_dir, files)
