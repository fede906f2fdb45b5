"""The quality benchmark's building blocks on tiny data, so the benchmark cannot silently break:
the planted-slice generator (its exact disparities match a Monte-Carlo estimate), the phrase
metrics, the baselines (fit, score, every error path) and the RESULTS.md section writer; and one
small end-to-end planted seed with the real packaged MiniLM (n=300).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import baselines  # noqa: E402
import bench_quality  # noqa: E402
import planted_slices as planted  # noqa: E402
import results_md  # noqa: E402

from llm2loss.config import DiagnoserSettings  # noqa: E402
from llm2loss.errors import DataError, NotFittedError  # noqa: E402


def test_true_disparities_match_a_monte_carlo_estimate() -> None:
    rng = np.random.default_rng(0)
    effects, failures = planted.plant_effects(rng)
    assert len(failures) == planted.N_FAILURE
    assert all(effects[f] >= planted.FAILURE_EFFECT[0] for f in failures)
    sentences = planted.all_sentences()
    rows = planted.draw_samples(sentences, 100_000, rng)
    frame = sentences.iloc[rows]
    loss = planted.PlantedModel(effects).losses(frame, rng)
    measured = np.array([loss[(frame[f] == v).to_numpy()].mean() - loss[(frame[f] != v).to_numpy()].mean()
                         for f, v in planted.attribute_values()])
    np.testing.assert_allclose(planted.true_disparities(effects), measured, atol=0.05)


def test_sentences_cover_every_factor_combination_with_fitting_articles() -> None:
    sentences = planted.all_sentences()
    n_combos = np.prod([len(v) for v in planted.FACTORS.values()]) * len(planted.TEMPLATES)
    assert len(sentences) == n_combos == sentences["text"].nunique()
    assert "An old woman is holding a guitar at the beach." in set(sentences["text"])
    assert not sentences["text"].str.contains(r"\ba old\b|\ban young\b", case=False).any()


def test_phrase_metrics_reward_the_planted_slices() -> None:
    phrases, owners = planted.phrase_vocabulary()
    failures = ["guitar", "at the beach"]
    ideal = np.array([1.0 if o in failures else 0.0 for o in owners])
    assert planted.precision_at_k(ideal, owners, failures, 6) == 1.0
    assert planted.precision_at_k(-ideal, owners, failures, 6) == 0.0
    effects = {v: 0.0 for _, v in planted.all_values()} | {"guitar": 1.0, "at the beach": 0.8, "old": -0.3}
    scores = np.array([effects[o] if o is not None else 0.0 for o in owners])
    np.testing.assert_allclose(planted.predicted_disparities(scores, owners),
                               planted.true_disparities(effects))
    with pytest.raises(ValueError, match="k must be in"):
        planted.precision_at_k(ideal, owners, failures, 0)
    with pytest.raises(DataError, match="at least 10 samples"):
        planted.draw_samples(planted.all_sentences(), 3, np.random.default_rng(0))


def _linear_world(n: int = 400, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, dim)).astype(np.float32)
    loss = np.exp(X[:, 0] + 0.1 * rng.standard_normal(n))
    return X, loss


@pytest.mark.parametrize("name", baselines.BASELINES)
def test_baselines_rank_held_out_losses(name: str) -> None:
    X, loss = _linear_world()
    model = baselines.make_baseline(name).fit(X[:300], loss[:300])
    rho = bench_quality.sample_correlations(model.predict(X[300:]), loss[300:])["spearman"]["r"]
    assert rho > 0.6, f"{name} ranks a one-direction loss badly: Spearman {rho:.2f}"


def test_baseline_errors_name_the_fix() -> None:
    X, loss = _linear_world(60)
    with pytest.raises(ValueError, match="unknown baseline 'svm'.*ridge, knn, error-direction"):
        baselines.make_baseline("svm")
    for name in baselines.BASELINES:
        with pytest.raises(NotFittedError, match="call fit"):
            baselines.make_baseline(name).predict(X)
    svm = baselines.ErrorDirection()
    with pytest.raises(DataError, match="at least 3 wrong"):
        svm.fit(X, loss, wrong=np.arange(60) < 2)
    with pytest.raises(DataError, match="one True/False"):
        svm.fit(X, loss, wrong=np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match="quantile must be in"):
        baselines.ErrorDirection(quantile=1.5).fit(X, loss)
    with pytest.raises(DataError, match="dimension"):
        baselines.make_baseline("ridge").fit(X, loss).predict(X[:, :3])


def test_write_section_replaces_only_its_own_section(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Core\n\ncore rows\n\n## Quality\n\nold\n\n"
                       "## Pipeline\n\npipeline rows\n")
    assert results_md.write_section(["## Quality", "", "new table"], results) == "## Quality"
    text = results.read_text()
    assert "old" not in text and "new table" in text
    assert text.index("## Core") < text.index("## Quality") < text.index("## Pipeline")
    assert "core rows" in text and "pipeline rows" in text


def test_write_section_appends_a_new_section_and_refuses_a_missing_heading(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Core\n\ncore rows\n")
    results_md.write_section("## Scale\n\nscale rows\n", results)
    text = results.read_text()
    assert text.index("core rows") < text.index("## Scale") < text.index("scale rows")
    with pytest.raises(ValueError, match="'## ' heading"):
        results_md.write_section(["no heading", "rows"], results)
    assert results.read_text() == text


def test_one_planted_seed_end_to_end_with_minilm() -> None:
    from llm2loss.encoders import build_encoder

    encoder = build_encoder(bench_quality.quality_data.ENCODER, device="cpu")
    sentences = planted.all_sentences()
    rows = planted.draw_samples(sentences, 300, np.random.default_rng(1))
    sentences = sentences.iloc[np.unique(rows)].reset_index(drop=True)  # embed only what is used
    E = encoder.encode_text(sentences["text"].tolist())
    phrases, owners = planted.phrase_vocabulary()
    small = DiagnoserSettings(objectives=["rank"], archs=["mlp"], n_members=2)
    result = bench_quality.planted_seed(0, 300, sentences, E, phrases, owners,
                                        encoder.encode_text(phrases), encoder, diagnosers=small)
    methods = set(result) - {"failures"}
    assert methods == {"rank-mlp", *baselines.BASELINES}
    for method in methods:
        assert set(result[method]) == set(bench_quality.PLANTED_METRICS)
    # Strong planted slices: the rank ensemble finds them even from 210 training sentences.
    assert result["rank-mlp"]["disparity_pearson"] > 0.5
    assert result["rank-mlp"]["precision_at_k"] >= 0.5
    summary = bench_quality.planted_summary({"per_seed": [result]})
    lines = bench_quality.planted_table({"per_seed": [result]})
    assert len(lines) == 2 + len(summary)


def test_verdict_says_plainly_when_the_rank_ensemble_is_not_better() -> None:
    assert "is better than the best baseline (knn, 0.400)" in bench_quality._versus(
        "x", 0.5, {"knn": 0.4, "ridge": 0.3})
    assert "NOT better than the best baseline (ridge, 0.600)" in bench_quality._versus(
        "x", 0.5, {"knn": 0.4, "ridge": 0.6})
    assert "tied (within 0.01) with" in bench_quality._versus("x", 0.5, {"knn": 0.505})
