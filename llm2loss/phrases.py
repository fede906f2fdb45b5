"""Phrases as untrusted text: normalised and validated once, at the boundary, before any model.

Phrases come from the command line, flow parameters, audit settings and vocabulary files; they
are printed in terminal tables, written into report.md tables and embedded by the encoder. One
function, `normalise_phrase`, turns any of them into clean single-line text or one ConfigError
that says where the phrase came from (`where`: "phrase 2", "vocabulary file 'x.txt', line 12"):

- bytes must be UTF-8 (decoded strictly), anything else must be a str;
- Unicode is NFC-normalised, byte order marks and zero-width spaces are dropped, and every run
  of whitespace (newlines and tabs included) becomes one space, so a phrase is one line;
- control characters (ANSI escapes such as ESC [2J, NUL, DEL) and invisible format characters
  (bidirectional overrides) are refused: they are never part of a description;
- a phrase needs at least one visible character and at most MAX_PHRASE_CHARS characters.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from llm2loss.errors import ConfigError

MAX_PHRASE_CHARS = 300
_DROPPED = {"\ufeff", "\u200b", "\u2060"}  # BOM / zero-width no-break space, zero-width spaces
_JOINERS = {"\u200c", "\u200d"}  # zero-width (non-)joiners: part of some scripts and emoji


def _text(value: Any, at: str) -> str:
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"a phrase is not valid UTF-8{at} ({exc.reason} at byte {exc.start}): "
                              "give the phrase as UTF-8 text") from None
    if not isinstance(value, str):
        raise ConfigError(f"a phrase is a {type(value).__name__}, not text{at}: give each phrase "
                          "as a string")
    return value


def _refused(char: str) -> bool:
    category = unicodedata.category(char)
    return category in ("Cc", "Cs", "Co", "Cn") or (category == "Cf" and char not in _JOINERS)


def normalise_phrase(value: Any, where: str | None = None) -> str:
    """`value` as clean one-line text (see the module doc), or ConfigError naming `where`."""
    at = f" ({where})" if where else ""
    text = unicodedata.normalize("NFC", _text(value, at))
    text = " ".join("".join(c for c in text if c not in _DROPPED).split())
    bad = next((c for c in text if _refused(c)), None)
    if bad is not None:
        raise ConfigError(
            f"a phrase holds the control or invisible character U+{ord(bad):04X}{at}: remove it "
            "(terminal escapes and control codes are not part of a phrase)"
        )
    if not any(unicodedata.category(c)[0] not in "ZM" for c in text):
        raise ConfigError(f"a phrase is empty or has no visible characters{at}: give each phrase "
                          "some words, e.g. \"an email about a mortgage\"")
    if len(text) > MAX_PHRASE_CHARS:
        raise ConfigError(
            f"a phrase has {len(text)} characters{at}, over the limit of {MAX_PHRASE_CHARS}: "
            "shorten it to a description of a concept, not a document"
        )
    return text


def normalise_phrases(values: list[Any]) -> list[str]:
    """Each of `values` through `normalise_phrase`; an error names the phrase's position."""
    if len(values) == 1:
        return [normalise_phrase(values[0])]
    return [normalise_phrase(v, f"phrase {i} of {len(values)}") for i, v in enumerate(values, start=1)]
