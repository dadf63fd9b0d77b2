"""Search text without I/O: what the index stores, how a query becomes FTS5 syntax, and where
a hit's snippet marks the match.

FTS5's `unicode61` tokenizer splits on spaces and punctuation, so Chinese and Japanese, which
have no spaces, would be one token per sentence and "東京" could not find "私は東京に行った".
The index therefore stores each Han, kana and Hangul character as a token of its own, and a
query's run of them becomes a phrase of single characters: adjacent characters match as a
substring, of any length (trigrams would miss the many two-character words). Tokens are folded
(case, accents, compatibility forms) before they are stored, in every script; the tokenizer,
`unicode61 remove_diacritics 2`, then only splits.

A query is never handed to MATCH as written: it is cut into words, "phrases" and prefixes*,
each rebuilt from tokens that hold only letters and digits and quoted, so no input can form
FTS5 syntax (a column filter, NEAR, an unbalanced quote).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache

QUERY_MAX_CHARS = 200
QUERY_MAX_TERMS = 16
PREFIX_MIN_CHARS = 2
SNIPPET_CHARS = 160

# Scripts written without spaces between words: each character is a token of its own.
_SPACELESS = (
    "\u2e80-\u2fdf"  # CJK radicals, Kangxi radicals
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3100-\u312f\u3190-\u31ff"  # bopomofo, kanbun, CJK strokes, katakana extensions
    "\u3400-\u4dbf\u4e00-\u9fff"  # CJK unified ideographs and extension A
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff66-\uff9f"  # half-width katakana
    "\U00020000-\U0003134f"  # CJK extensions B to G
)
_SPACELESS_CHAR = re.compile(f"[{_SPACELESS}]")
_QUERY_PART = re.compile(r'"([^"]*)"?|(\S+)')
_ASCII_TOKEN = re.compile(r"[A-Za-z0-9]+")
# The diacritics a search ignores: those of Latin, Greek, Cyrillic, Hebrew and Arabic. Kana's
# voicing marks and the Indic vowel signs and viramas are letters' parts there, and are kept.
_DIACRITICS = re.compile(
    "[\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670"
    "\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


class QueryError(ValueError):
    """A query that cannot be searched for; the message says why, for a 400."""


@cache
def _token_pattern() -> re.Pattern[str]:
    """unicode61's token characters: letters, digits, marks (Python's \\w has no marks: Indic
    vowel signs would split words) and private use; spaceless scripts one character each.
    Built on first use: it walks the Basic Multilingual Plane once."""
    marks = "".join(chr(point) for point in range(0x300, 0x10000)
                    if unicodedata.category(chr(point))[0] == "M")
    marks = re.escape(marks)
    return re.compile(f"[{_SPACELESS}]|(?:[^\\W_{_SPACELESS}]|[{marks}\ue000-\uf8ff])+")


def tokens(text: str) -> list[tuple[int, int]]:
    """The (start, end) of each token of `text`, as the index sees them."""
    if text.isascii():
        return [match.span() for match in _ASCII_TOKEN.finditer(text)]
    return [match.span() for match in _token_pattern().finditer(text)]


def index_text(text: str) -> str:
    """What the index stores for a message's text: its folded tokens, one space apart. On the
    writer's path for every message, so plain ASCII takes a short cut."""
    if text.isascii():
        return " ".join(_ASCII_TOKEN.findall(text)).lower()
    return fold(" ".join(text[start:end] for start, end in tokens(text)))


def fold(token: str) -> str:
    """Case, accents and compatibility forms (full-width letters, ligatures) away, in every
    script: `remove_diacritics 2` folds only Latin, so Greek's tonos needs doing here."""
    if token.isascii():
        return token.lower()
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", token).casefold())
    return unicodedata.normalize("NFC", _DIACRITICS.sub("", decomposed))


@dataclass(frozen=True)
class Phrase:
    """Tokens that must appear in this order, side by side; the last one may be a prefix."""

    words: tuple[str, ...]
    prefix: bool = False

    def match_syntax(self) -> str:
        quoted = '"' + " ".join(self.words).replace('"', '""') + '"'
        return quoted + " *" if self.prefix else quoted


def parse_query(query: str) -> list[Phrase]:
    """Words, "quoted phrases" and prefix* terms, all of which must match; an unclosed quote
    runs to the end. Raises QueryError for a query with nothing to search for."""
    query = query.strip()
    if not query:
        raise QueryError("q is empty")
    if len(query) > QUERY_MAX_CHARS:
        raise QueryError(f"q is longer than {QUERY_MAX_CHARS} characters")
    phrases: list[Phrase] = []
    for match in _QUERY_PART.finditer(query):
        quoted, word = match.group(1), match.group(2)
        text = quoted if quoted is not None else word
        prefix = word is not None and word.endswith("*")
        # A token of marks alone (a lone combining accent) folds to nothing, as in the index.
        words = tuple(word for word in (fold(text[start:end]) for start, end in tokens(text))
                      if word)
        if not words:
            continue
        if prefix and len(words[-1]) < PREFIX_MIN_CHARS and not _SPACELESS_CHAR.match(words[-1]):
            raise QueryError(f"a prefix* needs at least {PREFIX_MIN_CHARS} letters")
        phrases.append(Phrase(words, prefix))
    if not phrases:
        raise QueryError("q has no letters or digits to search for")
    if len(phrases) > QUERY_MAX_TERMS:
        raise QueryError(f"q has more than {QUERY_MAX_TERMS} terms")
    return phrases


def match_expression(phrases: list[Phrase]) -> str:
    """The FTS5 MATCH string: every phrase, quoted, all required."""
    return " AND ".join(phrase.match_syntax() for phrase in phrases)


def marks(text: str, phrases: list[Phrase]) -> list[tuple[int, int]]:
    """Where each phrase occurs in `text`, as (start, end) character offsets, in order."""
    spans = tokens(text)
    folded = [fold(text[start:end]) for start, end in spans]
    found: set[tuple[int, int]] = set()
    for phrase in phrases:
        words = [fold(word) for word in phrase.words]
        for first in range(len(spans) - len(words) + 1):
            window = folded[first:first + len(words)]
            head_ok = window[:-1] == words[:-1]
            last_ok = (window[-1].startswith(words[-1]) if phrase.prefix
                       else window[-1] == words[-1])
            if head_ok and last_ok:
                found.add((spans[first][0], spans[first + len(words) - 1][1]))
    return sorted(found)


def snippet(text: str, phrases: list[Phrase], width: int = SNIPPET_CHARS
            ) -> tuple[str, list[tuple[int, int]]]:
    """At most about `width` characters of `text` around its first match, with the marks
    inside it (offsets into the snippet; "…" stands for what was cut)."""
    spans = marks(text, phrases)
    if len(text) <= width:
        return text, spans
    first = spans[0][0] if spans else 0
    start = max(0, min(first - width // 4, len(text) - width))
    end = min(len(text), start + width)
    lead = "…" if start > 0 else ""
    cut = lead + text[start:end] + ("…" if end < len(text) else "")
    shift = len(lead) - start
    inside = [(a + shift, b + shift) for a, b in spans if a >= start and b <= end]
    return cut, inside
