"""Quality benchmark: the paper's evaluation where we can run it here, beside simple baselines.

1. SpamAssassin audits of spam-filter v1 and v2 (the demo's releases), embedded with the packaged
   MiniLM (cached under ~/.cache/llm2loss/bench_quality), split like the pipeline (hash of the id,
   30 % held out). `llm2loss.analysis.analyse` computes the Table 2 analog (per-sample
   Pearson/Spearman/Kendall on held-out e-mails for every objective x architecture: members
   mean +- std, ensemble mean and median), the familiarity AUROC (Table 1 analog) and the
   attribute agreement (Table 3 analog: measured vs phrase-predicted loss disparity over the
   attributes derived from the e-mails).
2. A planted-slice benchmark (`planted_slices`): templated sentences with known factors and a
   black-box loss with planted failure slices; recovery of the disparities (correlation and
   sign accuracy against the exact planted disparities) and precision@k of the failure phrases,
   over several seeds.
3. Baselines on the same embeddings (`baselines`): ridge on log1p(loss), a kNN regressor and an
   error-direction linear SVM, scored on samples and on phrases exactly like the diagnosers.

The paper's own figures (CelebA face recognition, CLIP ViT-B/32: a different dataset, model and
encoder) are shown beside ours for reference only. Prints the tables and replaces the
`## Quality` section of benchmarks/RESULTS.md.

Run: `.venv/bin/python benchmarks/bench_quality.py [--quick] [--seeds 5] [--no-write]`; the raw
results are kept in ~/.cache/llm2loss/bench_quality/last-results.json and `--rerender` rebuilds
the tables from them without recomputing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import planted_slices as planted  # noqa: E402
import quality_data  # noqa: E402
from baselines import BASELINES, make_baseline  # noqa: E402
from results_md import RESULTS, write_section  # noqa: E402

from llm2loss import evaluation  # noqa: E402
from llm2loss.analysis import analyse, jsonable  # noqa: E402
from llm2loss.config import AuditSettings, DiagnoserSettings  # noqa: E402
from llm2loss.sources import default_attribute_phrases  # noqa: E402
from llm2loss.vocab import vocabularies_for  # noqa: E402

SECTION = "## Quality"
LOSS_DIAGNOSERS = ("rank-mlp", "rank-linear", "regress-mlp", "regress-linear")
CORRS = ("pearson", "spearman", "kendall")
#: The paper's figures (Ardeshir 2023; CelebA face recognition, CLIP ViT-B/32): NOT our dataset.
PAPER = {"rank": {"spearman": 0.560, "kendall": 0.399}, "regress": {"spearman": 0.271},
         "familiarity_auroc": "0.84-1.0", "disparity_kendall": 0.253}
PRECISION_K = 6  # = the number of planted failure phrases (2 slices x 3 paraphrases)
TIE = 0.01  # differences smaller than this are reported as ties
RAW = quality_data.CACHE / "bench_quality" / "last-results.json"


# --------------------------------------------------------------------------- shared scoring


def fit_baselines(X: np.ndarray, loss: np.ndarray, *, wrong: np.ndarray | None = None,
                  random_state: int = 0) -> dict[str, Any]:
    """Every baseline fitted on (X, loss); the error direction uses `wrong` when given."""
    fitted: dict[str, Any] = {}
    for name in BASELINES:
        model = make_baseline(name, random_state=random_state) if name != "ridge" else make_baseline(name)
        fitted[name] = model.fit(X, loss, wrong=wrong) if name == "error-direction" else model.fit(X, loss)
    return fitted


def sample_correlations(scores: np.ndarray, loss: np.ndarray) -> dict[str, dict[str, float]]:
    """Per-sample Pearson/Spearman/Kendall (r, p) of scores against held-out losses."""
    result = evaluation.correlations(scores, loss)
    return {c: {"r": result[c][0], "p": result[c][1]} for c in CORRS}


def agreement(true: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Correlations (r, p) and sign accuracy of predicted vs measured disparities."""
    result = evaluation.disparity_agreement(true, predicted)
    out: dict[str, Any] = {c: {"r": result[c][0], "p": result[c][1]} for c in CORRS}
    out["sign_accuracy"] = result["sign_accuracy"]
    return out


# --------------------------------------------------------------------------- SpamAssassin


def spam_benchmark(limit: int | None, log) -> dict[str, Any]:
    """Both spam releases: analyse() metrics plus the baselines on the same split and phrases."""
    started = time.perf_counter()
    corpus = quality_data.spam_corpus(limit)
    X, encoder = quality_data.spam_embeddings(corpus)
    log(f"spam: {len(corpus.ids)} e-mails embedded ({time.perf_counter() - started:.0f} s)")
    test = quality_data.split_mask(corpus.ids)
    attrs = corpus.attributes.drop(columns=["group"])
    phrases = {k: v for k, v in default_attribute_phrases(corpus.source.spec).items()
               if k in attrs.columns}
    out: dict[str, Any] = {"n": len(corpus.ids), "n_test": int(test.sum()), "releases": {}}
    for version, losses in quality_data.release_losses(corpus).items():
        t = time.perf_counter()
        loss = losses["loss"].to_numpy()
        correct = losses["correct"].to_numpy(dtype=bool)
        result = analyse(
            X_train=X[~test], loss_train=loss[~test], X_test=X[test], loss_test=loss[test],
            correct_test=correct[test], attributes_test=attrs[test].reset_index(drop=True),
            text_encoder=encoder, settings=AuditSettings(),
            vocabularies=vocabularies_for("text", None), attribute_phrases=phrases)
        metrics = result.metrics
        base = fit_baselines(X[~test], loss[~test], wrong=~correct[~test])
        rows = metrics["attributes"]["rows"]
        yes = encoder.encode_text([r["phrase_attr"] for r in rows])
        no = encoder.encode_text([r["phrase_not"] for r in rows])
        measured = np.array([r["measured"]["loss"]["signed"] for r in rows])
        out["releases"][version] = {
            "error_rate": float(1 - correct[test].mean()),
            "validity": metrics["validity"],
            "familiarity": metrics["familiarity"].get("auroc", []),
            "agreement": [a for a in metrics["attributes"]["agreement"] if a["metric"] == "loss"],
            "attributes": [{"attribute": r["attribute"], "measured": r["measured"]["loss"]["signed"],
                            "rank-mlp": r["predicted"].get("rank-mlp", {}).get("signed")}
                           for r in rows],
            "baselines": {
                name: {"sample": sample_correlations(b.predict(X[test]), loss[test]),
                       "agreement": agreement(measured, b.predict(yes) - b.predict(no))}
                for name, b in base.items()},
        }
        log(f"spam {version}: analysed in {time.perf_counter() - t:.0f} s")
    return out


# --------------------------------------------------------------------------- planted slices


def planted_seed(seed: int, n: int, sentences, E_sentences: np.ndarray, phrases: list[str],
                 owners: list[str | None], E_phrases: np.ndarray, encoder, *,
                 diagnosers: DiagnoserSettings | None = None) -> dict[str, Any]:
    """One seed: plant effects, draw samples, fit diagnosers and baselines, score them.

    `diagnosers` defaults to rank and regress, linear and MLP, the default ensemble size.
    """
    rng = np.random.default_rng(seed)
    effects, failures = planted.plant_effects(rng)
    rows = planted.draw_samples(sentences, n, rng)
    loss = planted.PlantedModel(effects).losses(sentences.iloc[rows], rng)
    X = E_sentences[rows]
    test = rng.random(n) < 0.3
    spec = diagnosers or DiagnoserSettings(objectives=["rank", "regress"])
    settings = AuditSettings(seed=seed, diagnosers=spec.model_copy(update={"random_state": seed}))
    result = analyse(X_train=X[~test], loss_train=loss[~test], X_test=X[test],
                     loss_test=loss[test], correct_test=None, attributes_test=None,
                     text_encoder=encoder, settings=settings,
                     vocabularies={"planted_phrases": phrases}, attribute_phrases={})
    scorers = {name: (lambda E, d=d: d.predict(E, space="text"), lambda E, d=d: d.predict(E))
               for name, d in result.diagnosers.items()}
    for name, b in fit_baselines(X[~test], loss[~test], random_state=seed).items():
        scorers[name] = (b.predict, b.predict)
    true = planted.true_disparities(effects)
    out: dict[str, Any] = {"failures": failures}
    for name, (score_text, score_data) in scorers.items():
        phrase_scores = score_text(E_phrases)
        sample = sample_correlations(score_data(X[test]), loss[test])
        agree = agreement(true, planted.predicted_disparities(phrase_scores, owners))
        out[name] = {
            "spearman": sample["spearman"]["r"], "kendall": sample["kendall"]["r"],
            "disparity_pearson": agree["pearson"]["r"], "disparity_kendall": agree["kendall"]["r"],
            "sign_accuracy": agree["sign_accuracy"],
            "precision_at_k": planted.precision_at_k(phrase_scores, owners, failures, PRECISION_K),
        }
    return out


def planted_benchmark(seeds: list[int], n: int, log) -> dict[str, Any]:
    """The planted-slice benchmark over `seeds`; per method, every metric per seed."""
    from llm2loss.encoders import build_encoder

    encoder = build_encoder(quality_data.ENCODER, device="cpu")
    sentences = planted.all_sentences()
    E_sentences = quality_data.cached_embeddings(
        "planted-sentences", f"{len(sentences)}", sentences["text"].tolist(),
        sentences["text"].tolist(), encoder)
    phrases, owners = planted.phrase_vocabulary()
    E_phrases = encoder.encode_text(phrases)
    per_seed = []
    for seed in seeds:
        t = time.perf_counter()
        per_seed.append(planted_seed(seed, n, sentences, E_sentences, phrases, owners,
                                     E_phrases, encoder))
        log(f"planted seed {seed}: failures {per_seed[-1]['failures']} "
            f"({time.perf_counter() - t:.0f} s)")
    return {"n": n, "seeds": seeds, "n_attributes": len(planted.attribute_values()),
            "n_phrases": len(phrases), "per_seed": per_seed}


# --------------------------------------------------------------------------- tables


def _rp(cell: dict[str, float]) -> str:
    """r with its p-value, e.g. 0.412 (p=3e-52)."""
    return f"{cell['r']:.3f} (p={cell['p']:.0e})"


def _mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def _paper_validity(objective: str) -> str:
    paper = PAPER.get(objective, {})
    parts = [f"ρ {paper['spearman']:.3f}" if "spearman" in paper else "",
             f"τ {paper['kendall']:.3f}" if "kendall" in paper else ""]
    return ", ".join(p for p in parts if p) or "—"


def spam_validity_table(spam: dict[str, Any]) -> list[str]:
    """Table 2 analog: per release, diagnoser (members / ensemble) and baseline correlations."""
    lines = ["| release | method | aggregation | Pearson r (p) | Spearman ρ (p) | Kendall τ (p) "
             "| paper, CelebA (ensemble) |", "|---|---|---|---|---|---|---|"]
    for version, rel in spam["releases"].items():
        for row in rel["validity"]:
            m = row["members"]
            members = " | ".join(f"{m[c]['mean']:.3f} ± {m[c]['std']:.3f} (median p={m[c]['p_median']:.0e})"
                                 for c in CORRS)
            lines.append(f"| {version} | {row['diagnoser']} | members (mean ± std) | {members} | |")
            for agg in ("ensemble_mean", "ensemble_median"):
                cells = " | ".join(_rp(row[agg][c]) for c in CORRS)
                paper = _paper_validity(row["objective"]) if agg == "ensemble_mean" else ""
                label = agg.replace("_", " ")
                lines.append(f"| {version} | {row['diagnoser']} | {label} | {cells} | {paper} |")
        for name, b in rel["baselines"].items():
            cells = " | ".join(_rp(b["sample"][c]) for c in CORRS)
            lines.append(f"| {version} | {name} (baseline) | — | {cells} | |")
    return lines


def spam_agreement_table(spam: dict[str, Any]) -> list[str]:
    """Table 3 analog: measured vs predicted loss disparity over the e-mail attributes."""
    lines = ["| release | method | attributes | Pearson r (p) | Spearman ρ (p) | Kendall τ (p) "
             "| sign accuracy | paper Kendall τ, CelebA (ranker) |", "|---|---|---|---|---|---|---|---|"]
    for version, rel in spam["releases"].items():
        for a in rel["agreement"]:
            if "reason" in a:
                lines.append(f"| {version} | {a['diagnoser']} | {a['n']} | {a['reason']} | | | | |")
                continue
            paper = f"{PAPER['disparity_kendall']:.3f}" if a["diagnoser"].startswith("rank") else ""
            cells = " | ".join(_rp(a[c]) for c in CORRS)
            lines.append(f"| {version} | {a['diagnoser']} | {a['n']} | {cells} | "
                         f"{a['sign_accuracy']:.2f} | {paper} |")
        n = len(rel["attributes"])
        for name, b in rel["baselines"].items():
            cells = " | ".join(_rp(b["agreement"][c]) for c in CORRS)
            lines.append(f"| {version} | {name} (baseline) | {n} | {cells} | "
                         f"{b['agreement']['sign_accuracy']:.2f} | |")
    return lines


def spam_attribute_detail(spam: dict[str, Any]) -> list[str]:
    """Per attribute: measured loss disparity and the rank-mlp phrase disparity, per release."""
    versions = list(spam["releases"])
    head = " | ".join(f"{v} measured | {v} rank-mlp predicted" for v in versions)
    lines = [f"| attribute | {head} |", "|---" * (1 + 2 * len(versions)) + "|"]
    names = [a["attribute"] for a in spam["releases"][versions[0]]["attributes"]]
    for name in names:
        cells = []
        for v in versions:
            row = next((a for a in spam["releases"][v]["attributes"] if a["attribute"] == name), None)
            pred = "—" if row is None or row["rank-mlp"] is None else f"{row['rank-mlp']:+.3f}"
            cells.append("—" if row is None else f"{row['measured']:+.3f} | {pred}")
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines


def familiarity_table(spam: dict[str, Any]) -> list[str]:
    """Table 1 analog: AUROC of in-domain e-mail topics vs out-of-domain phrases."""
    lines = ["| release | diagnoser | out-of-domain vocabulary | n in / out | AUROC | paper, CelebA |",
             "|---|---|---|---|---|---|"]
    for version, rel in spam["releases"].items():
        for row in rel["familiarity"]:
            lines.append(f"| {version} | {row['diagnoser']} | {row['out_of_domain']} | "
                         f"{row['n_in']} / {row['n_out']} | {row['auroc']:.3f} | "
                         f"{PAPER['familiarity_auroc']} |")
    return lines


PLANTED_METRICS = ("spearman", "kendall", "disparity_pearson", "disparity_kendall",
                   "sign_accuracy", "precision_at_k")


def planted_summary(result: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Per method and metric, the values over seeds."""
    methods = [k for k in result["per_seed"][0] if k != "failures"]
    return {m: {k: [s[m][k] for s in result["per_seed"]] for k in PLANTED_METRICS} for m in methods}


def planted_table(result: dict[str, Any]) -> list[str]:
    """Planted-slice recovery per method, mean ± std over seeds."""
    lines = ["| method | per-sample Spearman ρ | per-sample Kendall τ | disparity Pearson r | "
             f"disparity Kendall τ | sign accuracy | precision@{PRECISION_K} |",
             "|---|---|---|---|---|---|---|"]
    for method, values in planted_summary(result).items():
        label = method if method in LOSS_DIAGNOSERS else f"{method} (baseline)"
        lines.append(f"| {label} | " + " | ".join(_mean_std(values[k]) for k in PLANTED_METRICS) + " |")
    return lines


def _versus(what: str, ours: float, baselines: dict[str, float]) -> str:
    """One sentence: is rank-mlp's value better than the best baseline's (or within TIE)?"""
    best_name, best = max(baselines.items(), key=lambda item: item[1])
    if abs(ours - best) < TIE:
        word = f"tied (within {TIE}) with"
    else:
        word = "better than" if ours > best else "NOT better than"
    return f"- {what}: rank-mlp {ours:.3f} is {word} the best baseline ({best_name}, {best:.3f})."


def verdict(spam: dict[str, Any] | None, planted_result: dict[str, Any] | None) -> list[str]:
    """Plain sentences: is the rank ensemble (rank-mlp) better than every baseline, per measure?"""
    lines = []
    for version, rel in (spam or {}).get("releases", {}).items():
        rank = next(r for r in rel["validity"] if r["diagnoser"] == "rank-mlp")
        lines.append(_versus(f"SpamAssassin {version}, per-sample Spearman (ensemble mean)",
                             rank["ensemble_mean"]["spearman"]["r"],
                             {n: b["sample"]["spearman"]["r"] for n, b in rel["baselines"].items()}))
        agree = [a for a in rel["agreement"] if a["diagnoser"] == "rank-mlp" and "kendall" in a]
        if agree:
            lines.append(_versus(f"SpamAssassin {version}, attribute-disparity Kendall τ",
                                 agree[0]["kendall"]["r"],
                                 {n: b["agreement"]["kendall"]["r"] for n, b in rel["baselines"].items()}))
    if planted_result is not None:
        summary = planted_summary(planted_result)
        for metric in ("spearman", "disparity_kendall", "sign_accuracy", "precision_at_k"):
            means = {m: float(np.mean(v[metric])) for m, v in summary.items()
                     if m not in LOSS_DIAGNOSERS}
            best = max(means, key=means.get)
            paired = np.subtract(summary["rank-mlp"][metric], summary[best][metric])
            lines.append(_versus(
                f"Planted slices, {metric.replace('_', ' ')} (mean over seeds)",
                float(np.mean(summary["rank-mlp"][metric])), means)
                + f" Paired over seeds: difference {paired.mean():+.3f} ± {paired.std():.3f}, "
                f"rank-mlp ahead in {int((paired > 0).sum())} of {len(paired)} seeds.")
    return lines


def section(spam: dict[str, Any] | None, planted_result: dict[str, Any] | None,
            args: argparse.Namespace, seconds: float) -> list[str]:
    """The `## Quality` section of RESULTS.md."""
    lines = [SECTION, "",
             f"`benchmarks/bench_quality.py{' --quick' if args.quick else ''}` on "
             f"{platform.machine()} / {os.cpu_count()} CPU cores (shared), torch {torch.__version__}, "
             f"{seconds / 60:.1f} min. Encoder: the packaged MiniLM "
             "(sentence-transformers all-MiniLM-L6-v2, 384-d). Diagnosers: LossDiagnoser defaults "
             "(5 members each). Paper columns: LLM2Loss (Ardeshir 2023) on CelebA face "
             "recognition with CLIP ViT-B/32 — **a different dataset, model and encoder**, shown "
             "for reference only, not comparable number for number.", ""]
    lines += ["Baselines, fitted on the same training split and embeddings: `ridge` = RidgeCV on "
              "log1p(loss); `knn` = cosine kNN regressor of log1p(loss), k by 3-fold CV; "
              "`error-direction` = the failure-directions approach: LinearSVC (balanced, C by CV) "
              "separating wrong from right predictions, its decision value as the score. On "
              "SpamAssassin 'wrong' is the filter's own misclassification; on the planted "
              "benchmark it is loss above the 80th percentile of the training losses. Phrases are "
              "scored by applying each fitted model to the phrase embedding.", ""]
    lines += ["### Verdict: is the rank ensemble better than the baselines?", ""]
    lines += verdict(spam, planted_result) + [""]
    if spam is not None:
        subset = "the full corpus" if args.limit is None else f"a deterministic {args.limit}-e-mail subset"
        lines += ["### SpamAssassin: per-sample validity (Table 2 analog)", "",
                  f"{spam['n']} e-mails ({subset}); held out: {spam['n_test']} (the pipeline's "
                  "hash split, 30 %). Losses: binary cross-entropy of spam-filter v1 (naive Bayes, "
                  "trained on plain-text mail only) and v2 (logistic regression, trained without "
                  "mailing-list ham). Held-out error rates: "
                  + ", ".join(f"{v} {r['error_rate']:.3f}" for v, r in spam["releases"].items())
                  + ". One diagnoser seed; member spread is the ± column. Reading note: naive "
                  "Bayes (v1) is near-certain on most e-mails (median loss about 1e-12 in our "
                  "runs), so its rank correlations are dominated by the few uncertain or wrong "
                  "e-mails and by ties; Pearson rewards getting the huge losses right (regress), "
                  "Spearman/Kendall reward the order (rank).", ""]
        lines += spam_validity_table(spam) + [""]
        lines += ["### SpamAssassin: attribute agreement (Table 3 analog)", "",
                  "Measured: mean held-out loss with minus without the attribute. Predicted: "
                  "score('attr' phrase) - score('not attr' phrase) (the source's default phrase "
                  "pairs). Correlations are across attributes, so with ~8 attributes the p-values "
                  "are large: read them as indicative.", ""]
        lines += spam_agreement_table(spam) + [""]
        lines += spam_attribute_detail(spam) + [""]
        lines += ["### SpamAssassin: familiarity (Table 1 analog)", "",
                  "AUROC of in-domain e-mail topic phrases (plus the attribute phrases) against "
                  "an out-of-domain phrase list.", ""]
        lines += familiarity_table(spam) + [""]
    if planted_result is not None:
        seeds = planted_result["seeds"]
        lines += ["### Planted slices", "",
                  f"{planted_result['n']} templated sentences per seed (age x gender x object x "
                  f"setting x 8 templates), 30 % held out; seeds {seeds} (mean ± std over seeds). "
                  f"Loss = {planted.BASE} + planted effects + LogNormal({planted.NOISE_MU}, "
                  f"{planted.NOISE_SIGMA}); per seed two factor values are failure slices "
                  f"(+{planted.FAILURE_EFFECT[0]}..+{planted.FAILURE_EFFECT[1]}), two are easy "
                  f"(-{planted.EASY_EFFECT[0]}..-{planted.EASY_EFFECT[1]}), the rest get "
                  f"N(0, 0.1). Disparities: {planted_result['n_attributes']} attribute values "
                  "against the exact planted disparity. Phrases: "
                  f"{planted_result['n_phrases']} (3 paraphrases per factor value + distractors); "
                  f"precision@{PRECISION_K} counts the planted failure-slice phrases among the "
                  f"top {PRECISION_K} (chance ≈ {6 / planted_result['n_phrases']:.2f}).", ""]
        lines += planted_table(planted_result) + [""]
        lines += ["Failure slices per seed: " + "; ".join(
            f"{s}: {', '.join(r['failures'])}" for s, r in zip(seeds, planted_result["per_seed"])), ""]
    return lines


def rerender(*, no_write: bool) -> int:
    """Rebuild the section from the raw results of the last run (no recomputation)."""
    if not RAW.exists():
        raise SystemExit(f"no raw results at {RAW}: run the benchmark once without --rerender")
    raw = json.loads(RAW.read_text())
    lines = section(raw["spam"], raw["planted"], argparse.Namespace(**raw["args"]), raw["seconds"])
    print("\n".join(lines))
    if not no_write:
        write_section(lines)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a 1500-e-mail subset and smaller planted datasets (3 seeds)")
    parser.add_argument("--seeds", type=int, default=5, help="planted-benchmark seeds (>= 3)")
    parser.add_argument("--n", type=int, default=3000, help="planted samples per seed")
    parser.add_argument("--limit", type=int, default=None, help="SpamAssassin subset size")
    parser.add_argument("--skip-spam", action="store_true")
    parser.add_argument("--skip-planted", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md")
    parser.add_argument("--rerender", action="store_true",
                        help=f"rebuild the tables from the last run's raw results ({RAW})")
    args = parser.parse_args(argv)
    if args.rerender:
        return rerender(no_write=args.no_write)
    if args.quick:
        args.seeds, args.n = min(args.seeds, 3), min(args.n, 1500)
        args.limit = args.limit or 1500
    if args.seeds < 3:
        parser.error("--seeds must be at least 3 (the spread needs several seeds)")
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)

    spam = None if args.skip_spam else spam_benchmark(args.limit, log)
    planted_result = None if args.skip_planted else planted_benchmark(list(range(args.seeds)), args.n, log)
    seconds = time.perf_counter() - started
    RAW.parent.mkdir(parents=True, exist_ok=True)
    RAW.write_text(json.dumps(jsonable({"spam": spam, "planted": planted_result,
                                        "args": vars(args), "seconds": seconds})))
    lines = section(spam, planted_result, args, seconds)
    print("\n".join(lines))
    if not args.no_write:
        write_section(lines)
        print(f"wrote the {SECTION} section of {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
