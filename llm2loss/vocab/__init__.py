"""Built-in phrase lists (vocabularies) and the loader for them and for users' own files.

A vocabulary is a list of phrases the diagnosers are asked about: class names of CIFAR-10/100,
CIFAR-100 super-classes, CelebA attributes, in-domain e-mail topics for the spam example, and
out-of-domain lists used as negatives for the familiarity AUROC. Each lives in this folder as a
`.txt` file: one phrase per line, blank lines and lines starting with `#` ignored.

`load_vocabulary("cifar10")` loads a built-in list; `load_vocabulary("my_phrases.txt")` loads a
user's file in the same format. `load_attribute_pairs` reads files of `attr | phrase | phrase`
lines (the phrase for "attr" and for "not attr"), e.g. the built-in `celeba_attribute_pairs`.
`default_vocabularies(modality)` names the lists an audit uses when the user names none, and
`vocabularies_for(modality, names)` loads them into the `{name: phrases}` dict the analysis takes.

Domains: the analysis treats a vocabulary as out-of-domain (a negative for the familiarity AUROC,
never a candidate failure concept) when `is_out_of_domain(name)`: its name is one of
`OUT_OF_DOMAIN` or carries the prefix `ood:` (e.g. `ood:my_unrelated_phrases.txt`, so users can
mark their own files). Every other vocabulary is in-domain.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from llm2loss.errors import ConfigError, DataError
from llm2loss.phrases import normalise_phrase

__all__ = [
    "OUT_OF_DOMAIN",
    "available_attribute_pairs",
    "available_vocabularies",
    "check_vocabularies",
    "default_vocabularies",
    "is_out_of_domain",
    "load_attribute_pairs",
    "load_vocabulary",
    "vocabularies_for",
]

OOD_PREFIX = "ood:"

#: Built-in vocabularies that are out-of-domain for the modality's default audit: familiarity
#: treats them as negatives unless an audit says otherwise.
OUT_OF_DOMAIN: frozenset[str] = frozenset(
    {"text_ood", "image_ood", "cifar10", "cifar100", "cifar100_superclasses"}
)

_PAIRS_SUFFIX = "_attribute_pairs"

_DEFAULTS: dict[str, list[str]] = {
    "text": ["email_topics", "text_ood"],
    "image": ["cifar10", "cifar100", "cifar100_superclasses", "image_ood"],
}


def _builtin_names() -> list[str]:
    """Stem of every built-in `.txt` file in this package, sorted."""
    folder = resources.files(__name__)
    return sorted(p.name[: -len(".txt")] for p in folder.iterdir() if p.name.endswith(".txt"))


def available_vocabularies() -> list[str]:
    """Names of the built-in phrase vocabularies, sorted (each loads with `load_vocabulary`)."""
    return [name for name in _builtin_names() if not name.endswith(_PAIRS_SUFFIX)]


def available_attribute_pairs() -> list[str]:
    """Names of the built-in attribute-pair lists (each loads with `load_attribute_pairs`)."""
    return [name for name in _builtin_names() if name.endswith(_PAIRS_SUFFIX)]


def default_vocabularies(modality: str) -> list[str]:
    """Built-in vocabulary names an audit of a `modality` ("text" | "image") model uses by default."""
    if modality not in _DEFAULTS:
        raise ValueError(f"unknown modality {modality!r}: choose one of {sorted(_DEFAULTS)}")
    return list(_DEFAULTS[modality])


def _read_lines(name_or_path: str | Path, builtins: list[str]) -> tuple[str, list[tuple[int, str]]]:
    """The source label and the (line number, normalised text) of each non-comment, non-blank
    line of a phrase file. Each line goes through `llm2loss.phrases.normalise_phrase` here, once,
    before any model loads: a bad line is a DataError naming the file and the line."""
    text_name = str(name_or_path)
    if isinstance(name_or_path, str) and text_name in builtins:
        data = resources.files(__name__).joinpath(f"{text_name}.txt").read_bytes()
        source = f"built-in vocabulary {text_name!r}"
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"vocabulary {text_name!r} is neither a built-in name nor an existing file; use one "
                f"of {builtins} or the path of a text file with one phrase per line"
            )
        data = path.read_bytes()
        source = f"vocabulary file {str(path)!r}"
    try:
        raw = data.decode("utf-8-sig")  # a leading byte order mark is not part of line 1
    except UnicodeDecodeError as exc:
        raise DataError(f"{source} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it "
                        "as UTF-8") from None
    lines = []
    for number, line in enumerate(raw.splitlines(), start=1):
        stripped = line.strip().lstrip("\ufeff")
        if not stripped or stripped.startswith("#"):
            continue
        try:
            lines.append((number, normalise_phrase(stripped, f"{source}, line {number}")))
        except ConfigError as exc:
            raise DataError(str(exc)) from None
    return source, lines


def load_vocabulary(name_or_path: str | Path) -> list[str]:
    """Phrases of a built-in vocabulary (by name) or of a text file (one phrase per line).

    Lines starting with `#` and blank lines are skipped; duplicates are dropped keeping the first.
    Raises ConfigError for an unknown name / missing file and DataError for a file with no phrases.
    """
    source, lines = _read_lines(name_or_path, available_vocabularies())
    phrases = list(dict.fromkeys(line for _, line in lines))
    if not phrases:
        raise DataError(f"{source} holds no phrases; write one phrase per line (# starts a comment)")
    return phrases


def load_attribute_pairs(name_or_path: str | Path) -> dict[str, tuple[str, str]]:
    """Attribute -> (phrase for "attr", phrase for "not attr") from `attr | yes | no` lines.

    Accepts a built-in name (e.g. "celeba_attribute_pairs") or a file path. Raises DataError naming
    the line when a line does not have exactly three non-empty `|`-separated fields.
    """
    source, lines = _read_lines(name_or_path, available_attribute_pairs())
    pairs: dict[str, tuple[str, str]] = {}
    for number, line in lines:
        fields = [field.strip() for field in line.split("|")]
        if len(fields) != 3 or not all(fields):
            raise DataError(
                f"{source}, line {number} {line!r} is not 'attribute | phrase for attr | "
                "phrase for not attr'; write three non-empty fields separated by '|'"
            )
        pairs[fields[0]] = (fields[1], fields[2])
    if not pairs:
        raise DataError(f"{source} holds no attribute pairs; write 'attr | yes phrase | no phrase'")
    return pairs


def is_out_of_domain(name: str) -> bool:
    """Whether the analysis treats the vocabulary `name` as out-of-domain (see the module doc)."""
    return name in OUT_OF_DOMAIN or name.startswith(OOD_PREFIX)


def vocabularies_for(modality: str, names: list[str] | None = None) -> dict[str, list[str]]:
    """Load the named vocabularies (built-in names or files; `ood:` prefix allowed) as a dict.

    With no names, the modality's defaults (`default_vocabularies`). Keys are the names as given,
    so `is_out_of_domain(key)` still tells the domain.
    """
    chosen = list(names) if names else default_vocabularies(modality)
    return {name: load_vocabulary(name.removeprefix(OOD_PREFIX)) for name in chosen}


def check_vocabularies(names: list[str]) -> None:
    """Load each named vocabulary once, so a missing file or a bad line fails at the start of an
    audit (before any model loads) instead of after its losses are computed."""
    for name in names:
        load_vocabulary(name.removeprefix(OOD_PREFIX))
