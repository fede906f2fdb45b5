"""The audit's data set: embeddings and losses joined on id, split into train and test.

The split is by a hash of each sample's id (`is_test_id`), so every release of a dataset gets the
same split and two versions are compared on the same held-out samples.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from llm2loss.errors import DataError
from llm2loss.pipeline.plan import AuditPlan
from llm2loss.store import ArtifactStore
from llm2loss.store.checks import check_loss_column, refuse_nonfinite_rows


def is_test_id(sample_id: str, *, seed: int, test_fraction: float) -> bool:
    """Deterministic split by a hash of the id: every release of a dataset gets the same split."""
    digest = hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


def load_audit_data(store: ArtifactStore, plan: AuditPlan, *, seed: int = 0,
                    test_fraction: float = 0.3) -> dict[str, Any]:
    """Join embeddings and losses on id and split the samples into train and test.

    The embeddings are read one part at a time and copied straight into the train and test
    matrices, so the embeddings are held once (plus one part), never as a whole matrix and its
    split. Returns `ids` and `losses` (the samples that have both a loss and an embedding, in the
    losses' order), `test_mask` (one bool per sample, `is_test_id`), and `X_train`, `X_test`
    (float32, rows in that order).
    """
    from llm2loss.store import table_to_matrix

    losses = store.read_stage_table(plan.losses_prefix).to_pandas()
    check_loss_column(losses, plan.losses_prefix)
    ids: list[str] = losses["id"].tolist()
    repeated = losses["id"][losses["id"].duplicated()]
    if len(repeated):
        raise DataError(
            f"the losses stage {plan.losses_prefix} lists {len(repeated)} ids twice (first "
            f"{repeated.iloc[0]!r}); delete the stage and rerun the audit to recompute it"
        )
    test_mask = np.array([is_test_id(i, seed=seed, test_fraction=test_fraction) for i in ids], dtype=bool)
    slot = np.empty(len(ids), dtype=np.int64)  # each sample's row in X_train or X_test
    slot[test_mask] = np.arange(int(test_mask.sum()))
    slot[~test_mask] = np.arange(int((~test_mask).sum()))
    row_of = {sample_id: row for row, sample_id in enumerate(ids)}
    found = np.zeros(len(ids), dtype=bool)
    X_train = X_test = np.zeros((0, 0), dtype=np.float32)
    for index, (part, table) in enumerate(store.iter_stage_parts(plan.embeddings_prefix)):
        part_ids, matrix = table_to_matrix(table)
        refuse_nonfinite_rows(store, plan.embeddings_prefix, part, part_ids, matrix)
        if index == 0:
            X_train = np.empty((int((~test_mask).sum()), matrix.shape[1]), dtype=np.float32)
            X_test = np.empty((int(test_mask.sum()), matrix.shape[1]), dtype=np.float32)
        rows = np.fromiter((row_of.get(i, -1) for i in part_ids), dtype=np.int64, count=len(part_ids))
        known = rows >= 0  # an embedded sample whose loss failed has no row
        if not known.all():
            rows, matrix = rows[known], matrix[known]
        in_test = test_mask[rows]
        X_test[slot[rows[in_test]]] = matrix[in_test]
        X_train[slot[rows[~in_test]]] = matrix[~in_test]
        found[rows] = True
    if not found.all():  # samples with a loss but no embedding (their embedding failed): dropped,
        # at the price of one more copy of the kept rows in this (rare) case
        X_train, X_test = X_train[found[~test_mask]], X_test[found[test_mask]]
        losses = losses[found].reset_index(drop=True)
        ids, test_mask = losses["id"].tolist(), test_mask[found]
    return {"ids": ids, "losses": losses, "test_mask": test_mask, "X_train": X_train, "X_test": X_test}
