"""Scorecards and how an evaluation is scored, in pure Python (no Django).

A scorecard form:

    {"sections": [
        {"name": "Greeting", "weight": 20, "criteria": [
            {"key": "greeted", "text": "Greeted the customer by name", "type": "yes_no", "weight": 1},
            {"key": "identity", "text": "Verified identity", "type": "yes_no", "auto_fail": true}]},
        {"name": "Resolution", "weight": 80, "criteria": [
            {"key": "empathy", "text": "Showed empathy", "type": "scale", "max": 5, "weight": 2}]}]}

Answers map each criterion key to "yes" / "no" (yes_no), a number 0..max
(scale) or "n/a". A criterion answered "n/a" leaves both the points and the
possible points of its section; a section with nothing applicable leaves
the total. The score is the weighted mean of the sections' percentages,
0-100. An auto-fail criterion answered "no" (or 0 on a scale) makes the
score 0 whatever else was answered, and the evaluation says which.
"""

from __future__ import annotations

from dataclasses import dataclass

TYPES = ("yes_no", "scale")
NA = "n/a"


class InvalidForm(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Score:
    score: float  # 0-100
    sections: dict[str, float | None]  # section name -> percentage (None: nothing applicable)
    auto_failed: tuple[str, ...]  # keys of auto-fail criteria that failed


def validate_form(form: dict) -> None:
    """Refuse a form scoring cannot use; `field` names where (e.g. sections[1].criteria[0].max)."""
    if not isinstance(form, dict) or not isinstance(form.get("sections"), list) or not form["sections"]:
        raise InvalidForm("sections", "a form is {\"sections\": [...]} with at least one section")
    keys: set[str] = set()
    for i, section in enumerate(form["sections"]):
        where = f"sections[{i}]"
        if not isinstance(section, dict) or not str(section.get("name", "")).strip():
            raise InvalidForm(f"{where}.name", "every section has a name")
        weight = section.get("weight", 1)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight <= 0:
            raise InvalidForm(f"{where}.weight", "a section's weight is a number above 0")
        criteria = section.get("criteria")
        if not isinstance(criteria, list) or not criteria:
            raise InvalidForm(f"{where}.criteria", "every section has at least one criterion")
        for j, c in enumerate(criteria):
            at = f"{where}.criteria[{j}]"
            if not isinstance(c, dict) or not str(c.get("key", "")).strip():
                raise InvalidForm(f"{at}.key", "every criterion has a key")
            if c["key"] in keys:
                raise InvalidForm(f"{at}.key", f"the key {c['key']!r} is used twice")
            keys.add(c["key"])
            if c.get("type") not in TYPES:
                raise InvalidForm(f"{at}.type", f"a criterion's type is one of {', '.join(TYPES)}")
            if c["type"] == "scale" and (not isinstance(c.get("max"), int) or isinstance(c.get("max"), bool)
                                         or c["max"] < 1):
                raise InvalidForm(f"{at}.max", "a scale criterion has a whole-number max of 1 or more")
            w = c.get("weight", 1)
            if not isinstance(w, (int, float)) or isinstance(w, bool) or w <= 0:
                raise InvalidForm(f"{at}.weight", "a criterion's weight is a number above 0")


def criteria(form: dict) -> dict[str, dict]:
    return {c["key"]: c for section in form["sections"] for c in section["criteria"]}


def score(form: dict, answers: dict) -> Score:
    """Score the answers against the form; every criterion must be answered (InvalidForm names the first not)."""
    known = criteria(form)
    unknown = sorted(set(answers) - set(known))
    if unknown:
        raise InvalidForm(f"answers.{unknown[0]}", f"no criterion {unknown[0]!r} on this scorecard")
    sections: dict[str, float | None] = {}
    failed: list[str] = []
    total = weights = 0.0
    for section in form["sections"]:
        points = possible = 0.0
        for c in section["criteria"]:
            key, answer = c["key"], answers.get(c["key"])
            if answer is None:
                raise InvalidForm(f"answers.{key}", f"{key!r} is not answered (use \"{NA}\" when it does not apply)")
            if answer == NA:
                continue
            weight = float(c.get("weight", 1))
            if c["type"] == "yes_no":
                if answer not in ("yes", "no"):
                    raise InvalidForm(f"answers.{key}", f"{key!r} is answered yes, no or {NA}")
                got = 1.0 if answer == "yes" else 0.0
            else:
                if not isinstance(answer, (int, float)) or isinstance(answer, bool) or not 0 <= answer <= c["max"]:
                    raise InvalidForm(f"answers.{key}", f"{key!r} is a number from 0 to {c['max']}, or {NA}")
                got = answer / c["max"]
            if c.get("auto_fail") and got == 0:
                failed.append(key)
            points += got * weight
            possible += weight
        pct = 100 * points / possible if possible else None
        sections[section["name"]] = None if pct is None else round(pct, 2)
        if pct is not None:
            total += pct * float(section.get("weight", 1))
            weights += float(section.get("weight", 1))
    overall = 0.0 if failed else (round(total / weights, 2) if weights else 0.0)
    return Score(overall, sections, tuple(failed))
