"""The paper's Table 1 and Figure 2: how familiar the audited data finds each phrase.

Table 1: AUROC, per familiarity diagnoser and out-of-domain vocabulary, of the in-domain phrases
against that vocabulary's phrases (higher = the diagnoser tells what the model has seen from what
it has not). Figure 2: per probe phrase, the logit and the sigmoid probability (mean and std over
members), and the same for the held-out data itself as a reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from llm2loss import evaluation
from llm2loss.analysis.phrases import Phrases
from llm2loss.diagnoser import LossDiagnoser

__all__ = ["familiarity_metrics"]


def familiarity_metrics(diagnosers: dict[str, LossDiagnoser], primary: str | None,
                        phrases: Phrases, X_test: np.ndarray) -> dict[str, Any]:
    """AUROC rows per familiarity diagnoser x out-of-domain vocabulary, and probe logits."""
    names = [n for n in diagnosers if diagnosers[n].objective == "familiarity"]
    if not names or primary is None:
        return {"available": False, "reason": "no familiarity diagnoser was configured"}
    result: dict[str, Any] = {"available": True, "reason": None, "diagnoser": primary,
                              "in_domain_count": len(phrases.in_domain),
                              "out_of_domain": sorted(phrases.out_of_domain), "auroc": []}
    if phrases.in_domain and phrases.out_of_domain:
        E_in = phrases.matrix(phrases.in_domain)
        for name in names:
            scores_in = diagnosers[name].predict(E_in, space="text")
            for vocab, ood in phrases.out_of_domain.items():
                scores_out = diagnosers[name].predict(phrases.matrix(ood), space="text")
                result["auroc"].append({
                    "diagnoser": name, "out_of_domain": vocab, "n_in": len(phrases.in_domain),
                    "n_out": len(ood),
                    "auroc": float(evaluation.familiarity_auroc(scores_in, scores_out))})
    else:
        result["auroc_reason"] = ("no in-domain phrases" if not phrases.in_domain
                                  else "no out-of-domain vocabulary") + " to compare; add " \
            "audit.phrases or an in-domain vocabulary and an out-of-domain one (e.g. text_ood)"
    result["probes"] = _probe_rows(diagnosers[primary], phrases)
    data_logits = diagnosers[primary].predict_members(X_test)
    result["data"] = {"logit": float(data_logits.mean()),
                      "probability": float(expit(data_logits).mean())}
    return result


def _probe_rows(diagnoser: LossDiagnoser, phrases: Phrases) -> list[dict[str, Any]]:
    """Figure 2: logit and sigmoid probability (mean, std over members) of every phrase."""
    probes = [(p, "in-domain", phrases.source[p]) for p in phrases.in_domain]
    probes += [(p, "out-of-domain", vocab) for vocab, ps in phrases.out_of_domain.items() for p in ps]
    if not probes:
        return []
    logits = diagnoser.predict_members(phrases.matrix([p for p, _, _ in probes]), space="text")
    probs = expit(logits)
    return [{"phrase": p, "domain": domain, "source": src,
             "logit": float(logits[:, i].mean()), "logit_std": float(logits[:, i].std()),
             "probability": float(probs[:, i].mean()), "probability_std": float(probs[:, i].std())}
            for i, (p, domain, src) in enumerate(probes)]
