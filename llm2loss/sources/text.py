"""Text datasets: a table file (CSV, JSONL, Parquet) and templated synthetic sentences.

`text_table` options (all optional): `id_column` ("id"), `text_column` ("text"), `label_column`
("label"), `attribute_columns` (default: every other column), `classes` (names for string labels).

`generated_text` makes sentences from templates with known attributes (age, gender, object), for
benchmarks that plant a failure slice and check that the diagnoser finds it. Options: `n` (1000),
`seed` (0). The label is the object's index in `GENERATED_OBJECTS`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llm2loss.config import DatasetSpec
from llm2loss.errors import ConfigError, DataError
from llm2loss.sources.base import RecordSource, SampleError, encode_labels, frame_digest

TABLE_FORMATS = (".csv", ".jsonl", ".json", ".parquet")


def read_table_file(path: Path) -> pd.DataFrame:
    """Read a CSV, JSONL or Parquet file into a DataFrame (format from the suffix)."""
    if not path.is_file():
        raise DataError(f"table file {str(path)!r} does not exist: check the dataset path")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".jsonl", ".json"):
        return pd.read_json(path, lines=True)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    raise ConfigError(
        f"unsupported table format {suffix!r} for {str(path)!r}: use one of {list(TABLE_FORMATS)}"
    )


def require_columns(frame: pd.DataFrame, wanted: dict[str, str], where: str) -> None:
    """Raise DataError when a configured column is missing, naming the columns that exist."""
    for option, column in wanted.items():
        if column not in frame.columns:
            raise DataError(
                f"{where} has no column {column!r} (option {option}); its columns are "
                f"{list(frame.columns)}: rename the column or set options.{option}"
            )


def text_table_source(spec: DatasetSpec) -> RecordSource:
    """A text dataset from one table file: id, text, label and attribute columns."""
    if not spec.path:
        raise ConfigError(f"dataset {spec.name!r}: text_table needs `path` (a CSV, JSONL or Parquet file)")
    opts = spec.options
    cols = {
        "id_column": opts.get("id_column", "id"),
        "text_column": opts.get("text_column", "text"),
        "label_column": opts.get("label_column", "label"),
    }
    where = f"dataset {spec.name!r} ({spec.path})"
    frame = read_table_file(Path(spec.path).expanduser())
    require_columns(frame, cols, where)
    used = set(cols.values())
    attr_cols = opts.get("attribute_columns")
    if attr_cols is None:
        attr_cols = [c for c in frame.columns if c not in used]
    require_columns(frame, {"attribute_columns": c for c in attr_cols}, where)
    labels, _ = encode_labels(frame[cols["label_column"]], classes=opts.get("classes"), where=where)
    texts = frame[cols["text_column"]].tolist()

    def load(position: int) -> str:
        return clean_text(texts[position])

    def content(keep: np.ndarray) -> list[str]:
        part = frame.iloc[keep][[cols["text_column"], cols["label_column"]]].astype(str)
        row_hashes = pd.util.hash_pandas_object(part, index=False).to_numpy()
        return [str(h) for h in row_hashes]

    return RecordSource(
        spec,
        modality="text",
        ids=frame[cols["id_column"]].astype(str).tolist(),
        labels=labels,
        attributes=frame[attr_cols].reset_index(drop=True),
        load_input=load,
        content=content,
    )


def clean_text(value: object) -> str:
    """The text of one sample, stripped; SampleError when missing or empty."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        raise SampleError("missing text")
    text = str(value).strip()
    if not text:
        raise SampleError("empty text")
    return text


GENERATED_AGES = ("young", "old")
GENERATED_GENDERS = ("man", "woman")
GENERATED_OBJECTS = ("bicycle", "guitar", "laptop", "umbrella", "camera")
GENERATED_TEMPLATES = (
    "A {age} {gender} is carrying a {object} down the street.",
    "This is a picture of a {age} {gender} with a {object}.",
    "The {age} {gender} bought a new {object} yesterday.",
    "A {age} {gender} sits next to a {object} in the park.",
)


def generated_text_source(spec: DatasetSpec) -> RecordSource:
    """Templated sentences with known attributes `old`, `woman` and `object` (seeded)."""
    n = int(spec.options.get("n", 1000))
    seed = int(spec.options.get("seed", 0))
    if n < 1:
        raise ConfigError(f"dataset {spec.name!r}: options.n must be at least 1, got {n}")
    frame = generate_sentences(n=n, seed=seed)
    texts = frame["text"].tolist()
    digest = frame_digest(frame)
    return RecordSource(
        spec,
        modality="text",
        ids=frame["id"].tolist(),
        labels=frame["label"].to_numpy(),
        attributes=frame[["old", "woman", "object"]],
        load_input=lambda position: texts[position],
        content=lambda keep: [digest] * len(keep),
    )


def generate_sentences(*, n: int, seed: int) -> pd.DataFrame:
    """n sentences (id, text, label, old, woman, object) from the templates, reproducibly."""
    rng = np.random.default_rng(seed)
    age = rng.integers(0, len(GENERATED_AGES), n)
    gender = rng.integers(0, len(GENERATED_GENDERS), n)
    obj = rng.integers(0, len(GENERATED_OBJECTS), n)
    template = rng.integers(0, len(GENERATED_TEMPLATES), n)
    texts = [
        GENERATED_TEMPLATES[t].format(
            age=GENERATED_AGES[a], gender=GENERATED_GENDERS[g], object=GENERATED_OBJECTS[o]
        )
        for t, a, g, o in zip(template, age, gender, obj, strict=True)
    ]
    return pd.DataFrame(
        {
            "id": [f"gen-{seed}-{i:06d}" for i in range(n)],
            "text": texts,
            "label": obj.astype(np.int64),
            "old": age == 1,
            "woman": gender == 1,
            "object": pd.Categorical([GENERATED_OBJECTS[o] for o in obj], categories=GENERATED_OBJECTS),
        }
    )


GENERATED_ATTRIBUTE_PHRASES: dict[str, tuple[str, str]] = {
    "old": ("an old person", "a young person"),
    "woman": ("a woman", "a man"),
}
