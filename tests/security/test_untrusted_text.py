"""Phrases and vocabulary files are untrusted text: normalised and validated once, at the boundary.

Invalid UTF-8, text with nothing visible, ANSI escapes (ESC [2J clears a terminal), newlines
(they break report.md tables), a byte order mark (it turned a comment line into a phrase) and
over-long lines: each is normalised or refused with one line that names the file and the line.
"""

from __future__ import annotations

import time

import pytest

from llm2loss.errors import ConfigError, DataError
from llm2loss.phrases import MAX_PHRASE_CHARS, normalise_phrase
from llm2loss.query import validate_phrases
from llm2loss.vocab import check_vocabularies, load_attribute_pairs, load_vocabulary


def test_whitespace_newlines_bom_and_zero_width_spaces_are_normalised():
    assert normalise_phrase("\ufeff  an email\n\twith a\r\nlink \u200b") == "an email with a link"
    assert normalise_phrase("cafe\u0301".encode()) == "caf\u00e9"  # NFC, from UTF-8 bytes
    assert normalise_phrase("a face \U0001F468\u200d\U0001F469") == "a face \U0001F468\u200d\U0001F469"


@pytest.mark.parametrize(("value", "words"), [
    (b"caf\xe9", "not valid UTF-8"),
    ("\x1b[2J\x1b[Hhello", "U+001B"),
    ("bell\x07", "U+0007"),
    ("abc\u202edcba", "U+202E"),  # a right-to-left override would spoof the printed phrase
    ("\u200b \u3000\u00a0", "no visible characters"),
    ("", "empty"),
    (3, "not text"),
    ("x" * (MAX_PHRASE_CHARS + 1), "over the limit"),
])
def test_untrusted_phrases_are_refused_with_one_line(value, words):
    with pytest.raises(ConfigError) as info:
        validate_phrases(["fine", value])
    message = str(info.value)
    assert words in message and "phrase 2 of 2" in message and "\n" not in message


def test_a_bom_does_not_turn_a_comment_into_a_phrase(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeff# a comment\nan email about a loan\n\n# another\n".encode())
    assert load_vocabulary(path) == ["an email about a loan"]


@pytest.mark.parametrize(("line", "words"), [("x" * 5000, "over the limit"), ("\x1b[2Jcleared", "U+001B"),
                                             ("\u200b\u200b", "no visible")])
def test_a_bad_vocabulary_line_names_the_file_and_the_line_at_once(tmp_path, line, words):
    path = tmp_path / "mine.txt"
    path.write_text(f"# phrases\nan email\n{line}\n", encoding="utf-8")
    start = time.perf_counter()
    with pytest.raises(DataError) as info:
        check_vocabularies([f"ood:{path}"])
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert str(path) in message and "line 3" in message and words in message and "\n" not in message


def test_invalid_utf8_in_a_vocabulary_names_the_file(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(DataError, match="latin.txt.*not UTF-8.*byte 6"):
        load_vocabulary(path)


def test_attribute_pair_lines_are_normalised_and_numbered_as_in_the_file(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("# header\nHat | a face\twith a hat | a face without a hat\n\nBad | only one\n")
    with pytest.raises(DataError, match="line 4"):
        load_attribute_pairs(path)
    path.write_text("Hat | a face\twith a hat | a face without a hat\n")
    assert load_attribute_pairs(path) == {"Hat": ("a face with a hat", "a face without a hat")}
