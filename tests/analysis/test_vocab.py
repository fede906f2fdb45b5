"""Tests of the built-in vocabularies and of loading users' phrase files."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm2loss.errors import ConfigError, DataError
from llm2loss.vocab import (
    OUT_OF_DOMAIN,
    available_attribute_pairs,
    available_vocabularies,
    default_vocabularies,
    is_out_of_domain,
    load_attribute_pairs,
    load_vocabulary,
    vocabularies_for,
)


def test_builtin_vocabularies_have_their_published_sizes() -> None:
    sizes = {name: len(load_vocabulary(name)) for name in available_vocabularies()}
    assert sizes["cifar10"] == 10
    assert sizes["cifar100"] == 100
    assert sizes["cifar100_superclasses"] == 20
    assert sizes["celeba_attributes"] == 40
    assert 40 <= sizes["email_topics"] <= 80
    assert 30 <= sizes["text_ood"] <= 50
    assert sizes["image_ood"] >= 20
    assert "cat" in load_vocabulary("cifar10")
    assert "aquarium fish" in load_vocabulary("cifar100")


def test_celeba_pairs_cover_every_attribute_with_distinct_phrases() -> None:
    pairs = load_attribute_pairs("celeba_attribute_pairs")
    assert set(pairs) == set(load_vocabulary("celeba_attributes"))
    assert pairs["Mustache"] == ("a face with a mustache", "a face without a mustache")
    assert all(yes != no for yes, no in pairs.values())
    assert available_attribute_pairs() == ["celeba_attribute_pairs"]


def test_defaults_name_builtins_and_mark_out_of_domain() -> None:
    for modality in ("text", "image"):
        names = default_vocabularies(modality)
        assert set(names) <= set(available_vocabularies())
        assert any(name in OUT_OF_DOMAIN for name in names)
    assert any(name not in OUT_OF_DOMAIN for name in default_vocabularies("text"))
    with pytest.raises(ValueError, match="text"):
        default_vocabularies("audio")


def test_user_file_skips_comments_blanks_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("# my phrases\n\n  a red car \nblue sky\na red car\n", encoding="utf-8")
    assert load_vocabulary(path) == ["a red car", "blue sky"]
    assert load_vocabulary(str(path)) == ["a red car", "blue sky"]


def test_unknown_name_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="cifar10"):
        load_vocabulary("no_such_vocabulary")


def test_empty_and_non_utf8_files_are_rejected(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no phrases"):
        load_vocabulary(empty)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8"):
        load_vocabulary(latin)


def test_malformed_pair_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text("Hat | a face with a hat | a face without a hat\nBad | only one\n")
    with pytest.raises(DataError, match="line 2"):
        load_attribute_pairs(path)
    path.write_text("# nothing\n")
    with pytest.raises(DataError, match="no attribute pairs"):
        load_attribute_pairs(path)


def test_vocabularies_for_loads_defaults_and_marks_user_ood_files(tmp_path: Path) -> None:
    loaded = vocabularies_for("text")
    assert list(loaded) == default_vocabularies("text")
    assert loaded["text_ood"] == load_vocabulary("text_ood")
    path = tmp_path / "far.txt"
    path.write_text("a tide table\n", encoding="utf-8")
    mine = vocabularies_for("image", ["cifar10", f"ood:{path}", str(path)])
    assert mine[f"ood:{path}"] == ["a tide table"] == mine[str(path)]
    assert is_out_of_domain("cifar10") and is_out_of_domain(f"ood:{path}")
    assert not is_out_of_domain(str(path)) and not is_out_of_domain("email_topics")
