"""Verdicts on a planted high-loss concept: stated only when prediction, measurement and
validity agree; ties, one member and identical phrases are never a verdict."""

from __future__ import annotations

import numpy as np
import pytest

from planted_region import DIM
from llm2loss import LossDiagnoser
from llm2loss.errors import DataError
from llm2loss.grounding import MeasuredGap, Reference, labelled_gap
from llm2loss.insights import compare_phrases, estimate
from llm2loss.verdicts import MIN_SEPARATION, P_STATE, Evidence, verdict


@pytest.fixture(scope="module")
def reference(planted) -> Reference:
    ids = [f"mail-{i}" for i in range(len(planted.X_test))]
    return Reference(planted.X_test, planted.loss_test, ids=ids,
                     previews=[f"<b>sample {i}</b>" for i in range(len(ids))])


def _pair(planted, ranker, reference, *, separation=None):
    return compare_phrases(ranker, planted.centres[:1], planted.centres[1:2], ["concept 0"],
                           ["concept 1"], reference=reference,
                           separation=None if separation is None else [separation]).iloc[0]


def test_planted_concept_is_stated_worse_with_its_measurement(planted, ranker, reference):
    row = _pair(planted, ranker, reference)
    assert row["verdict"] == "a worse" and row["reason"] is None
    assert row["measured_low"] > 0 and row["measured_diff"] > 0
    assert row["n_a"] == row["n_b"] == reference.k
    # the examples of a are the samples nearest the planted concept, with their measured loss
    ids = {e["id"] for e in row["examples_a"]}
    inside = {f"mail-{i}" for i in np.flatnonzero(planted.region_test)}
    assert len(row["examples_a"]) == 5 and ids <= inside
    assert all(e["side"] == "a" for e in row["examples_a"])
    swapped = compare_phrases(ranker, planted.centres[1:2], planted.centres[:1], ["concept 1"],
                              ["concept 0"], reference=reference).iloc[0]
    assert swapped["verdict"] == "b worse"


def test_a_stated_verdict_flips_to_uncertain_when_the_encoder_cannot_separate(
        planted, ranker, reference):
    assert _pair(planted, ranker, reference, separation=0.95)["verdict"] == "a worse"
    row = _pair(planted, ranker, reference, separation=MIN_SEPARATION - 0.05)
    assert row["verdict"] == "uncertain" and "does not separate" in row["reason"]


def test_a_prediction_without_measurement_is_never_stated(planted, ranker):
    table = compare_phrases(ranker, planted.centres[:1], planted.centres[1:2], ["a"], ["b"])
    assert "verdict" not in table.columns  # no reference: a prediction, no verdict column
    e = Evidence(p=1.0, median_diff=1.0, differences=np.ones(5), gap=None)
    assert verdict(e)[0] == "uncertain" and "no held-out samples" in verdict(e)[1]


def test_without_labels_a_pair_the_samples_barely_separate_is_uncertain() -> None:
    clear = MeasuredGap(diff=1.0, low=0.5, high=1.5, n_a=20, n_b=20)
    base = dict(p=1.0, median_diff=1.0, differences=np.ones(5), gap=clear)
    said, reason = verdict(Evidence(**base, spread=0.04))
    assert said == "uncertain" and "barely differ" in reason
    assert verdict(Evidence(**base, spread=0.3))[0] == "a worse"
    # a known 0-shot AUROC is the better evidence and takes precedence over the spread
    assert verdict(Evidence(**base, spread=0.04, separation=0.9))[0] == "a worse"


def test_noise_and_disagreement_are_uncertain() -> None:
    noisy = MeasuredGap(diff=0.1, low=-0.2, high=0.4, n_a=20, n_b=20)
    said, reason = verdict(Evidence(p=1.0, median_diff=1.0, differences=np.ones(5), gap=noisy))
    assert said == "uncertain" and "within noise" in reason
    clear = MeasuredGap(diff=1.0, low=0.5, high=1.5, n_a=20, n_b=20)
    said, reason = verdict(Evidence(p=0.6, median_diff=0.1, differences=np.ones(5), gap=clear))
    assert said == "uncertain" and "members disagree" in reason
    opposite = MeasuredGap(diff=-1.0, low=-1.5, high=-0.5, n_a=20, n_b=20)
    said, reason = verdict(Evidence(p=P_STATE, median_diff=1.0, differences=np.ones(5),
                                    gap=opposite))
    assert said == "uncertain" and "disagree" in reason
    said, reason = verdict(Evidence(p=1.0, median_diff=1.0, differences=np.ones(5), gap=clear,
                                    familiarity=(0.9, 0.1)))
    assert said == "uncertain" and "unfamiliar" in reason


def test_a_phrase_compared_with_itself_is_a_tie_not_a_verdict(planted, ranker, reference):
    table = compare_phrases(ranker, planted.centres[:2], planted.centres[:2], ["x", "y"],
                            ["x", "y"], reference=reference)
    assert (table["p_a_worse"] == 0.5).all()
    assert (table["verdict"] == "uncertain").all()
    assert table["reason"].str.contains("same").all()


def test_one_member_gives_no_probability_and_no_verdict(planted, reference):
    single = LossDiagnoser("rank", "mlp", n_members=1, random_state=0, max_epochs=5).fit(
        planted.X_train, planted.loss_train)
    row = _pair(planted, single, reference)
    assert np.isnan(row["p_a_worse"])
    assert row["verdict"] == "uncertain" and "one ensemble member" in row["reason"]


def test_bootstrap_members_train_on_different_rows(planted) -> None:
    kwargs = dict(n_members=3, random_state=0, max_epochs=3, early_stopping=False)
    boot = LossDiagnoser("regress", "linear", bootstrap=True, **kwargs).fit(
        planted.X_train, planted.loss_train)
    plain = LossDiagnoser("regress", "linear", **kwargs).fit(
        planted.X_train, planted.loss_train)
    assert boot.get_params()["bootstrap"] is True and plain.get_params()["bootstrap"] is False
    assert not np.allclose(boot.predict(planted.X_test), plain.predict(planted.X_test))
    with pytest.raises(ValueError, match="bootstrap"):
        LossDiagnoser(bootstrap="yes").fit(planted.X_train, planted.loss_train)


def test_estimate_is_grounded_in_the_nearest_samples(planted, ranker, reference):
    table = estimate(ranker, planted.centres[:2], ["concept 0", "concept 1"], reference=reference)
    planted_row, other = table.iloc[0], table.iloc[1]
    assert planted_row["measured_loss"] > other["measured_loss"]
    assert planted_row["measured_low"] <= planted_row["measured_loss"] <= planted_row["measured_high"]
    assert planted_row["measured_percentile"] > 50 > other["measured_percentile"] - 30
    assert planted_row["n_retrieved"] == reference.k
    assert planted_row["examples"][0]["preview"].startswith("<b>sample")  # raw: renderers escape


def test_zero_shot_auroc_and_labelled_gap(planted, reference) -> None:
    region = planted.region_test
    good = reference.separation_auroc(planted.centres[0], planted.centres[1], region)
    swapped = reference.separation_auroc(planted.centres[1], planted.centres[0], region)
    assert good > 0.9 and swapped == pytest.approx(1.0 - good)
    gap = labelled_gap(planted.loss_test, region)
    assert gap.significant and gap.low > 0 and gap.n_a == int(region.sum())
    assert reference.separation_auroc(planted.centres[0], planted.centres[1],
                                      np.ones_like(region)) is None


def test_bad_references_are_refused(planted) -> None:
    with pytest.raises(DataError, match="at least"):
        Reference(planted.X_test[:3], planted.loss_test[:3])
    with pytest.raises(DataError, match="finite loss"):
        Reference(planted.X_test, np.full(len(planted.X_test), np.nan))
    with pytest.raises(DataError, match="ids has"):
        Reference(planted.X_test, planted.loss_test, ids=["a"])
    ref = Reference(planted.X_test, planted.loss_test)
    with pytest.raises(DataError, match="-d"):
        ref.cosines(np.ones((1, DIM + 1)))
