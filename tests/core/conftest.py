"""Fixtures for the core tests, built on planted_region (a module, so tests can import it by name)."""

from __future__ import annotations

import pytest
from planted_region import Planted, make_planted

from llm2loss import LossDiagnoser


@pytest.fixture(scope="session")
def planted() -> Planted:
    return make_planted()


@pytest.fixture(scope="session")
def ranker(planted: Planted) -> LossDiagnoser:
    return LossDiagnoser("rank", "mlp", n_members=5, random_state=0).fit(
        planted.X_train, planted.loss_train)


@pytest.fixture(scope="session")
def familiarity(planted: Planted) -> LossDiagnoser:
    return LossDiagnoser("familiarity", "mlp", random_state=0).fit(planted.X_train)
