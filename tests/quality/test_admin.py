"""Scorecards in the admin: a form scoring cannot use is refused; editing a used version saves the next one."""

import json

import pytest
from django.contrib.auth import get_user_model

from events.store import Metadata
from quality import services
from quality.models import Evaluation, Scorecard
from tests.quality.test_scoring import FORM
from tests.quality.test_surveys import resolved
from tests.routing.factories import make_agent, make_queue

pytestmark = pytest.mark.django_db(transaction=True)


def test_scorecards_are_validated_and_a_used_version_is_never_changed(client, settings):
    settings.SURVEY_KIND = "off"
    admin = get_user_model().objects.create_superuser("root", password="root")
    client.force_login(admin)
    bad = client.post("/admin/quality/scorecard/add/", {"name": "chat", "form": json.dumps({"sections": []}),
                                                        "active": "on"})
    assert bad.status_code == 200 and "sections: a form is" in bad.content.decode() and not Scorecard.objects.exists()
    assert client.post("/admin/quality/scorecard/add/", {"name": "chat", "form": json.dumps(FORM),
                                                         "active": "on"}).status_code == 302
    card = Scorecard.objects.get()
    assert card.version == 1
    make_queue("billing")
    make_agent("ann", capacity={"chat": 5})
    services.evaluation_submit(scorecard_id=card.id, interaction_id=resolved().id, reviewer="root",
                               answers={"greeted": "yes", "identity": "yes", "empathy": 5, "solved": "yes"},
                               meta=Metadata())
    changed = {**FORM, "sections": FORM["sections"][:1]}
    assert client.post(f"/admin/quality/scorecard/{card.id}/change/", {"name": "chat", "form": json.dumps(changed),
                                                                      "active": "on"}).status_code == 302
    card.refresh_from_db()
    assert card.form == FORM and not card.active  # the used version stays as it was
    newest = Scorecard.objects.get(version=2)
    assert newest.form == changed and newest.active
    assert Evaluation.objects.get().scorecard_id == card.id
    assert client.get("/admin/quality/evaluation/").status_code == 200
    assert client.get("/admin/quality/evaluation/add/").status_code == 403
