"""Baselines for the loss diagnosers, fitted on the same embeddings and losses.

Every baseline maps an embedding to a score where higher means "the audited model loses more",
so it is evaluated exactly like a diagnoser: per-sample correlation with the held-out loss, and
phrases scored by applying the fitted model to phrase embeddings.

- `RidgeLoss`: ridge regression (sklearn RidgeCV, alpha by efficient leave-one-out) of
  log1p(loss), the same compressing transform the "regress" objective uses on heavy-tailed losses.
- `KNNLoss`: mean log1p(loss) of the k nearest training samples by cosine distance (k chosen by
  3-fold cross-validation among `n_neighbors_grid`); a phrase gets the loss of its neighbours.
- `ErrorDirection`: the "failure directions" approach (Jain et al. 2023): a linear SVM
  separating wrong from right predictions (sklearn LinearSVC, balanced classes, C by 3-fold CV on
  ROC AUC); its decision value is the score. "Wrong" is the audited model's own mistake when a
  `wrong` mask is given (classifiers), else loss above the `quantile` of the training losses.

`make_baseline(name)` builds one by name; unknown names raise ValueError naming the choices.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.neighbors import KNeighborsRegressor
from sklearn.svm import LinearSVC

from llm2loss.diagnoser import check_matrix, check_vector
from llm2loss.errors import DataError, NotFittedError

BASELINES = ("ridge", "knn", "error-direction")


def _fitted(estimator: Any, attribute: str) -> None:
    if not hasattr(estimator, attribute):
        raise NotFittedError(f"{type(estimator).__name__} is not fitted: call fit(X, loss) first")


class RidgeLoss:
    """Ridge regression of log1p(loss) on the embedding; alpha chosen among `alphas`."""

    def __init__(self, *, alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)) -> None:
        self.alphas = alphas

    def fit(self, X: Any, loss: Any) -> "RidgeLoss":
        """Fit on embeddings X (n, d) and per-sample losses (n,)."""
        X = check_matrix(X, "X", min_rows=3)
        y = check_vector(loss, "loss", length=len(X))
        self.model_ = RidgeCV(alphas=self.alphas).fit(X, np.log1p(np.maximum(y, 0.0)))
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted log1p(loss) per row (higher = worse)."""
        _fitted(self, "model_")
        return self.model_.predict(check_matrix(X, "X", dim=self.model_.coef_.shape[-1]))


class KNNLoss:
    """Mean log1p(loss) of the k nearest training embeddings (cosine); k by 3-fold CV."""

    def __init__(self, *, n_neighbors_grid: tuple[int, ...] = (10, 25, 50), random_state: int = 0
                 ) -> None:
        self.n_neighbors_grid = n_neighbors_grid
        self.random_state = random_state

    def fit(self, X: Any, loss: Any) -> "KNNLoss":
        """Fit on embeddings X (n, d) and per-sample losses (n,)."""
        X = check_matrix(X, "X", min_rows=3)
        y = np.log1p(np.maximum(check_vector(loss, "loss", length=len(X)), 0.0))
        grid = [k for k in self.n_neighbors_grid if k <= len(X) * 2 // 3] or [1]
        search = GridSearchCV(KNeighborsRegressor(metric="cosine"), {"n_neighbors": grid},
                              cv=KFold(3, shuffle=True, random_state=self.random_state))
        self.model_ = search.fit(X, y).best_estimator_
        self.n_neighbors_ = int(self.model_.n_neighbors)
        self.dim_ = X.shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Neighbours' mean log1p(loss) per row (higher = worse)."""
        _fitted(self, "model_")
        return self.model_.predict(check_matrix(X, "X", dim=self.dim_))


class ErrorDirection:
    """Linear SVM separating wrong from right predictions; its decision value is the score."""

    def __init__(self, *, quantile: float = 0.8, C_grid: tuple[float, ...] = (0.01, 0.1, 1.0),
                 random_state: int = 0) -> None:
        self.quantile = quantile
        self.C_grid = C_grid
        self.random_state = random_state

    def fit(self, X: Any, loss: Any, *, wrong: Any = None) -> "ErrorDirection":
        """Fit on embeddings X (n, d); `wrong` (n,) bool, or else loss above the quantile."""
        if not 0.0 < self.quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile!r}")
        X = check_matrix(X, "X", min_rows=3)
        y = check_vector(loss, "loss", length=len(X))
        if wrong is None:
            target = y > np.quantile(y, self.quantile)
        else:
            target = np.asarray(wrong, dtype=bool)
            if target.shape != (len(X),):
                raise DataError(f"wrong has shape {target.shape} but X has {len(X)} rows; pass "
                                "one True/False (the model was wrong) per row")
        counts = np.bincount(target.astype(int), minlength=2)
        if counts.min() < 3:
            raise DataError(f"the error-direction SVM needs at least 3 wrong and 3 right samples, "
                            f"got {counts[1]} wrong and {counts[0]} right; use more data or a "
                            "lower quantile")
        search = GridSearchCV(
            LinearSVC(class_weight="balanced", random_state=self.random_state),
            {"C": list(self.C_grid)}, scoring="roc_auc",
            cv=StratifiedKFold(3, shuffle=True, random_state=self.random_state))
        self.model_ = search.fit(X, target).best_estimator_
        self.wrong_fraction_ = float(target.mean())
        self.dim_ = X.shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Signed distance to the SVM's boundary per row (higher = more like the wrong side)."""
        _fitted(self, "model_")
        return self.model_.decision_function(check_matrix(X, "X", dim=self.dim_))


def make_baseline(name: str, **params: Any) -> RidgeLoss | KNNLoss | ErrorDirection:
    """A baseline by name: "ridge", "knn" or "error-direction"."""
    classes = {"ridge": RidgeLoss, "knn": KNNLoss, "error-direction": ErrorDirection}
    if name not in classes:
        raise ValueError(f"unknown baseline {name!r}: choose one of {', '.join(BASELINES)}")
    return classes[name](**params)
