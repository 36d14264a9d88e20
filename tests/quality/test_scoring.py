"""Scorecard forms and scores, without a database: weights, N/A, auto-fail, and forms refused naming the field."""

import pytest

from quality import scoring

FORM = {"sections": [
    {"name": "Opening", "weight": 20, "criteria": [
        {"key": "greeted", "type": "yes_no"},
        {"key": "identity", "type": "yes_no", "auto_fail": True}]},
    {"name": "Resolution", "weight": 80, "criteria": [
        {"key": "empathy", "type": "scale", "max": 5, "weight": 2},
        {"key": "solved", "type": "yes_no", "weight": 3}]},
]}


def test_sections_are_weighted_and_criteria_within_them():
    result = scoring.score(FORM, {"greeted": "no", "identity": "yes", "empathy": 4, "solved": "yes"})
    # Opening 1 of 2 points: 50 %. Resolution (2 x 4/5 + 3) / 5 = 92 %. Overall (20 x 50 + 80 x 92) / 100 = 83.6.
    assert result.sections == {"Opening": 50.0, "Resolution": 92.0} and result.score == 83.6
    assert result.auto_failed == ()


def test_not_applicable_criteria_and_sections_leave_the_total():
    result = scoring.score(FORM, {"greeted": "n/a", "identity": "n/a", "empathy": 5, "solved": "no"})
    assert result.sections == {"Opening": None, "Resolution": 40.0} and result.score == 40.0


def test_an_auto_fail_criterion_makes_the_score_zero():
    result = scoring.score(FORM, {"greeted": "yes", "identity": "no", "empathy": 5, "solved": "yes"})
    assert result.score == 0.0 and result.auto_failed == ("identity",) and result.sections["Resolution"] == 100.0


@pytest.mark.parametrize("answers, field", [
    ({"greeted": "yes", "identity": "yes", "empathy": 6, "solved": "yes"}, "answers.empathy"),
    ({"greeted": "maybe", "identity": "yes", "empathy": 1, "solved": "yes"}, "answers.greeted"),
    ({"greeted": "yes", "identity": "yes", "empathy": 1}, "answers.solved"),
    ({"greeted": "yes", "identity": "yes", "empathy": 1, "solved": "yes", "smile": "yes"}, "answers.smile"),
])
def test_wrong_answers_are_refused_naming_the_criterion(answers, field):
    with pytest.raises(scoring.InvalidForm) as caught:
        scoring.score(FORM, answers)
    assert caught.value.field == field


@pytest.mark.parametrize("form, field", [
    ({}, "sections"),
    ({"sections": [{"name": "", "criteria": []}]}, "sections[0].name"),
    ({"sections": [{"name": "A", "weight": 0, "criteria": [{"key": "a", "type": "yes_no"}]}]}, "sections[0].weight"),
    ({"sections": [{"name": "A", "criteria": [{"key": "a", "type": "stars"}]}]}, "sections[0].criteria[0].type"),
    ({"sections": [{"name": "A", "criteria": [{"key": "a", "type": "scale"}]}]}, "sections[0].criteria[0].max"),
    ({"sections": [{"name": "A", "criteria": [{"key": "a", "type": "yes_no"}, {"key": "a", "type": "yes_no"}]}]},
     "sections[0].criteria[1].key"),
])
def test_forms_scoring_cannot_use_are_refused_naming_the_field(form, field):
    with pytest.raises(scoring.InvalidForm) as caught:
        scoring.validate_form(form)
    assert caught.value.field == field
