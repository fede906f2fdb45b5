"""Does the way attributes are phrased decide the rank ensemble's attribute agreement?

The quality benchmark found the rank ensemble behind the error-direction SVM on SpamAssassin
attribute agreement (Kendall tau across 8 attributes). This benchmark tries the obvious fixes on
the same embeddings, losses and split, and writes the `## Quality: phrasing variants` section
of benchmarks/RESULTS.md:

- single: one phrase per side (the source's default pairs; what the audit uses);
- paraphrase-mean: three paraphrases per side, the mean of their scores;
- paraphrase-centroid: the normalised mean of the three paraphrase embeddings, scored once;
- knn50: each phrase replaced by the mean score of its 50 nearest training e-mails (cosine),
  so the diagnoser is only evaluated where it was trained (single phrases / paraphrases).

The rank-mlp ensemble is refitted with three seeds to show how much of any difference is seed
noise. Run: `.venv/bin/python benchmarks/bench_phrasing.py [--no-write]` (about 3 min; the
embeddings come from bench_quality's cache).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import quality_data  # noqa: E402
from baselines import make_baseline  # noqa: E402
from results_md import write_section  # noqa: E402

from llm2loss import LossDiagnoser, evaluation  # noqa: E402

SECTION = "## Quality: phrasing variants"
SEEDS = (0, 1, 2)
K_NEAREST = 50

#: Three phrasings per side; the first of each is the source's default phrase.
PARAPHRASES: dict[str, tuple[list[str], list[str]]] = {
    "has_html": (["an email written in HTML", "an HTML email with formatting and colours",
                  "a message with HTML markup and styled text"],
                 ["a plain-text email", "an email in plain text without formatting",
                  "a simple text-only message"]),
    "is_reply": (["a reply in an email conversation", "a response to a previous email, quoting it",
                  "Re: an answer to someone's message"],
                 ["a new email that starts a conversation", "a first message, not a reply",
                  "an unsolicited new message"]),
    "from_mailing_list": (["a message from a mailing list", "a post to a mailing list discussion",
                           "an email sent to a list of subscribers"],
                          ["a personal email", "a private message to one person",
                           "an email written to me personally"]),
    "has_attachment": (["an email with an attachment", "a message with a file attached",
                        "an email carrying an attached document"],
                       ["an email without attachments", "a message with no attached files",
                        "a text-only email with nothing attached"]),
    "long": (["a long email", "a very long message with many paragraphs",
              "a lengthy email with a lot of text"],
             ["a short email", "a brief message of a few lines", "a very short note"]),
    "has_url": (["an email containing a web link", "a message with a URL to a website",
                 "an email that says click this link"],
                ["an email without any links", "a message with no web addresses",
                 "an email with no URLs"]),
    "is_forward": (["a forwarded email", "a message forwarded from someone else",
                    "Fwd: an email passed on"],
                   ["an original email", "a message written by the sender",
                    "an email that was not forwarded"]),
    "hard_ham": (["a legitimate newsletter or promotion", "a commercial newsletter I subscribed to",
                  "a marketing email from a real company"],
                 ["an ordinary personal email", "a normal email between colleagues",
                  "a personal note from a friend"]),
}

Scorer = Callable[[np.ndarray], np.ndarray]


def unit(E: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm."""
    E = np.asarray(E, dtype=np.float32)
    return E / np.linalg.norm(E, axis=1, keepdims=True)


def variant_disparities(score: Scorer, yes: list[np.ndarray], no: list[np.ndarray],
                        X_train: np.ndarray) -> dict[str, np.ndarray]:
    """Predicted disparity per attribute under each phrasing variant (see the module doc)."""
    train_scores = score(X_train)

    def near(P: np.ndarray) -> np.ndarray:
        idx = np.argpartition(-(P @ X_train.T), K_NEAREST, axis=1)[:, :K_NEAREST]
        return train_scores[idx].mean(axis=1)

    def centroid(P: np.ndarray) -> np.ndarray:
        return unit(P.mean(axis=0, keepdims=True))

    return {
        "single": np.array([score(y[:1])[0] - score(n[:1])[0] for y, n in zip(yes, no)]),
        "paraphrase-mean": np.array([score(y).mean() - score(n).mean() for y, n in zip(yes, no)]),
        "paraphrase-centroid": np.array([score(centroid(y))[0] - score(centroid(n))[0]
                                         for y, n in zip(yes, no)]),
        "knn50-single": np.array([near(y[:1])[0] - near(n[:1])[0] for y, n in zip(yes, no)]),
        "knn50-paraphrase": np.array([near(y).mean() - near(n).mean() for y, n in zip(yes, no)]),
    }


def measure() -> dict[str, dict[str, dict[str, list[tuple[float, float]]]]]:
    """{release: {variant: {method: [(kendall tau, sign accuracy) per seed]}}}."""
    corpus = quality_data.spam_corpus(None)
    X, encoder = quality_data.spam_embeddings(corpus)
    test = quality_data.split_mask(corpus.ids)
    names = [a for a in PARAPHRASES if a in corpus.attributes.columns]
    masks = {a: corpus.attributes[a].to_numpy(bool)[test] for a in names}
    yes = [unit(encoder.encode_text(PARAPHRASES[a][0])) for a in names]
    no = [unit(encoder.encode_text(PARAPHRASES[a][1])) for a in names]
    X_train = unit(X[~test])
    out: dict[str, dict[str, dict[str, list[tuple[float, float]]]]] = {}
    for version, losses in quality_data.release_losses(corpus).items():
        loss = losses["loss"].to_numpy()
        wrong = ~losses["correct"].to_numpy(bool)
        truth = np.array([loss[test][masks[a]].mean() - loss[test][~masks[a]].mean() for a in names])
        scorers: list[tuple[str, Scorer]] = [
            ("rank-mlp", LossDiagnoser("rank", "mlp", n_members=5, random_state=s)
             .fit(X[~test], loss[~test]).predict) for s in SEEDS]
        scorers.append(("rank-linear", LossDiagnoser("rank", "linear", n_members=5, random_state=0)
                        .fit(X[~test], loss[~test]).predict))
        scorers.append(("ridge", make_baseline("ridge").fit(X[~test], loss[~test]).predict))
        scorers.append(("error-direction", make_baseline("error-direction", random_state=0)
                        .fit(X[~test], loss[~test], wrong=wrong[~test]).predict))
        per_variant: dict[str, dict[str, list[tuple[float, float]]]] = {}
        for method, score in scorers:
            for variant, pred in variant_disparities(score, yes, no, X_train).items():
                agreement = evaluation.disparity_agreement(truth, pred)
                per_variant.setdefault(variant, {}).setdefault(method, []).append(
                    (float(agreement["kendall"][0]), float(agreement["sign_accuracy"])))
        out[version] = per_variant
    return out


def cell(values: list[tuple[float, float]]) -> str:
    """'tau (sign)' for one run, or 'mean tau [min, max] (mean sign)' over seeds."""
    taus, signs = [v[0] for v in values], [v[1] for v in values]
    if len(values) == 1:
        return f"{taus[0]:+.2f} ({signs[0]:.2f})"
    return (f"{statistics.mean(taus):+.2f} [{min(taus):+.2f}, {max(taus):+.2f}] "
            f"({statistics.mean(signs):.2f})")


def render(result: dict[str, dict[str, dict[str, list[tuple[float, float]]]]], seconds: float) -> list[str]:
    """The RESULTS.md section."""
    methods = ["rank-mlp", "rank-linear", "ridge", "error-direction"]
    lines = [SECTION, "",
             f"`benchmarks/bench_phrasing.py` ({seconds / 60:.1f} min, 1-min load average "
             f"{os.getloadavg()[0]:.1f} at the end): SpamAssassin, the quality benchmark's split and "
             f"losses, {len(PARAPHRASES)} attributes. Cells: Kendall tau between measured and predicted "
             "attribute disparities (mean loss with minus without), and in brackets the sign "
             f"accuracy; rank-mlp is refitted with seeds {list(SEEDS)} (mean [min, max] (mean sign)).",
             "",
             "| release | phrasing | " + " | ".join(methods) + " |",
             "|---|---|" + "---|" * len(methods)]
    for version, per_variant in result.items():
        for variant, per_method in per_variant.items():
            lines.append(f"| {version} | {variant} | "
                         + " | ".join(cell(per_method[m]) for m in methods) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    start = time.perf_counter()
    lines = render(measure(), time.perf_counter() - start)
    print("\n".join(lines))
    if not args.no_write:
        print(f"wrote the {write_section(lines)} section")


if __name__ == "__main__":
    main()
