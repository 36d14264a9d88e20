"""Scoring and matching, in pure Python: VADER sentiment (offline, its lexicon ships in the wheel) and the
admin's flag terms as whole words."""

from __future__ import annotations

import re
from functools import cache


@cache
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(text: str) -> float:
    """VADER's compound score of `text`: -1 (very negative) to +1 (very positive), 0 for neutral or empty."""
    return round(_analyzer().polarity_scores(text)["compound"], 4) if text and text.strip() else 0.0


def running(previous: float, texts: int, compound: float, weight: float) -> float:
    """The moving average after one more text: the first text sets it, each later one counts `weight`."""
    return round(compound if texts == 0 else previous * (1 - weight) + compound * weight, 4)


def _pattern(term: str) -> re.Pattern:
    words = [re.escape(w) for w in term.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def matches(text: str, terms: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(kind, term, evidence) for each kind whose terms occur in `text`, first match per kind; the evidence is
    the match with up to 40 characters either side."""
    found: dict[str, tuple[str, str, str]] = {}
    for term, kind in terms:
        if kind in found:
            continue
        m = _pattern(term).search(text)
        if m:
            start, end = max(0, m.start() - 40), min(len(text), m.end() + 40)
            found[kind] = (kind, term, ("…" if start else "") + text[start:end] + ("…" if end < len(text) else ""))
    return list(found.values())
