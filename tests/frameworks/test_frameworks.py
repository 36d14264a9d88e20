"""Call frameworks: versioned scripts attached to queues or contact reasons, each contact's progress recorded step
by step, decisions that branch, and a required identity step that keeps account changes refused until done."""

import importlib
import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from authority.models import AuthorityLimit
from events import store
from events.store import Metadata
from frameworks import flow
from frameworks.models import Script, ScriptRun
from interactions import services as interaction_services
from routing import services as routing_services
from tests.conftest import client_for
from tests.routing.factories import make_agent, make_queue, make_waiting

pytestmark = pytest.mark.django_db(transaction=True)
M = Metadata()
STEPS = importlib.import_module("frameworks.migrations.0002_standard_script").STEPS


@pytest.fixture
def handled():
    Script.objects.create(name="Billing", steps=STEPS, queues=["billing"], dispositions=["general"])
    make_queue("billing")
    ann = make_agent("ann", capacity={"chat": 2})
    iid = make_waiting("billing")
    routing_services.dispatch()
    interaction_services.interaction_accept(interaction_id=iid, agent_id="ann", meta=M)
    return ann, iid


def test_a_contact_starts_its_queue_s_script_and_the_agent_records_each_step_with_branches(handled):
    ann, iid = handled
    api = client_for(ann.user)
    view = api.get(f"/api/v1/interactions/{iid}/script/").json()
    assert (view["script"], view["version"], view["next_step"]) == ("Billing", 1, "greeting")
    assert view["closed_gates"] == ["account_changes"] and view["required_total"] == 4

    def step(key, answer=""):
        return api.post(f"/api/v1/interactions/{iid}/script/steps/", {"step": key, "answer": answer}, format="json")

    assert step("greeting").json()["next_step"] == "identity"
    assert step("route", "maybe").json()["field"] == "answer"  # not one of the options
    after = step("route", "escalate").json()
    assert after["skipped"] == ["resolution"] and after["completed"]["route"] == "escalate"
    assert step("resolution").status_code == 409  # off the branch taken
    assert step("greeting").status_code == 409  # done already
    assert step("nowhere").json()["field"] == "step"
    said = step("discovery", "card 4111 1111 1111 1111 was charged twice").json()
    assert "4111 1111" not in said["completed"]["discovery"]
    run = ScriptRun.objects.get(interaction_id=iid)
    kinds = [(e.event_type, e.data.get("step")) for e in store.read_stream(run.id)]
    assert kinds == [("frameworks.ScriptStarted", None), ("frameworks.StepCompleted", "greeting"),
                     ("frameworks.StepCompleted", "route"), ("frameworks.StepCompleted", "discovery")]
    assert {e.customer_id for e in store.read_stream(run.id)} == {run.customer_id}  # on the customer's timeline


def test_account_changes_are_refused_until_the_identity_step_is_done(handled):
    ann, iid = handled
    AuthorityLimit.objects.update_or_create(kind="refund", group=None,
                                            defaults={"per_action": Decimal("100"), "per_day": Decimal("500")})
    api = client_for(ann.user)
    refund = {"kind": "refund", "amount": "20.00", "reason": "double charge"}
    refused = api.post(f"/api/v1/interactions/{iid}/actions/", refund, format="json")
    assert refused.status_code == 409 and refused.json()["code"] == "protocol_refused"
    assert "identity" in refused.json()["detail"]
    assert not [e for e in store.read_all(limit=10_000) if e.event_type.startswith("authority.")]  # nothing written
    api.post(f"/api/v1/interactions/{iid}/script/steps/", {"step": "identity"}, format="json")
    done = api.post(f"/api/v1/interactions/{iid}/actions/", refund, format="json")
    assert done.status_code == 201, done.content


def test_a_contact_without_a_script_is_not_gated_and_an_agent_can_switch_one_on_by_contact_reason():
    make_queue("sales")
    ann = make_agent("ann", capacity={"chat": 2})
    iid = make_waiting("sales")
    routing_services.dispatch()
    interaction_services.interaction_accept(interaction_id=iid, agent_id="ann", meta=M)
    api = client_for(ann.user)
    assert api.get(f"/api/v1/interactions/{iid}/script/").status_code == 404
    assert "disposition" in api.post(f"/api/v1/interactions/{iid}/script/", {}, format="json").json()
    assert api.post(f"/api/v1/interactions/{iid}/script/", {"disposition": "nothing"},
                    format="json").status_code == 400
    Script.objects.create(name="Cancellation", steps=STEPS, dispositions=["cancellation"])
    switched = api.post(f"/api/v1/interactions/{iid}/script/", {"disposition": "cancellation"}, format="json")
    assert switched.status_code == 200 and switched.json()["script"] == "Cancellation"
    bob = make_agent("bob")
    assert client_for(bob.user).get(f"/api/v1/interactions/{iid}/script/").status_code == 404  # not theirs
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    assert client_for(boss).get(f"/api/v1/interactions/{iid}/script/").status_code == 200
    assert client_for(bob.user).post(f"/api/v1/interactions/{iid}/script/steps/", {"step": "greeting"},
                                     format="json").status_code == 404  # as its script: not bob's


@pytest.mark.parametrize("steps, field", [
    ([], "steps"),
    ([{"key": "a", "kind": "greeting", "title": "Hi"}, {"key": "a", "kind": "closing", "title": "Bye"}],
     "steps[1].key"),
    ([{"key": "a", "kind": "dance", "title": "Hi"}], "steps[0].kind"),
    ([{"key": "a", "kind": "identity", "title": "Id", "gates": ["everything"]}], "steps[0].gates"),
    ([{"key": "d", "kind": "decision", "title": "?", "options": [{"value": "x", "next": "d"}, {"value": "y"}]}],
     "steps[0].options[0].next"),
    ([{"key": "d", "kind": "decision", "title": "?", "options": [{"value": "x"}]}], "steps[0].options"),
    ([{"key": "d", "kind": "decision", "title": "?", "options": [{"value": "x", "next": "c"}, {"value": "y"}]},
      {"key": "id", "kind": "identity", "title": "Id", "gates": ["account_changes"]},
      {"key": "c", "kind": "closing", "title": "Bye"}], "steps[0].options[0].next"),  # would lock changes for good
])
def test_a_flow_that_cannot_be_followed_is_refused_naming_the_step(steps, field):
    with pytest.raises(flow.InvalidFlow) as refused:
        flow.validate(steps)
    assert refused.value.field == field


def test_scripts_are_edited_in_the_admin_and_a_version_contacts_ran_is_kept(handled, client):
    ann, iid = handled
    admin_user = get_user_model().objects.create_superuser(username="root", password="x")
    client.force_login(admin_user)
    script = Script.objects.get(name="Billing")
    form = {"name": "Billing", "queues": json.dumps(["billing"]), "dispositions": json.dumps(["general"]),
            "active": "on", "steps": json.dumps(STEPS[:2] + STEPS[-1:])}
    bad = client.post(f"/admin/frameworks/script/{script.pk}/change/", {**form, "steps": '[{"key": "a"}]'})
    assert bad.status_code == 200 and "steps[0].kind: kind must be one of" in bad.content.decode()
    saved = client.post(f"/admin/frameworks/script/{script.pk}/change/", form)
    assert saved.status_code == 302
    versions = list(Script.objects.filter(name="Billing").order_by("version").values_list("version", "active"))
    assert versions == [(1, False), (2, True)]
    assert len(Script.objects.get(name="Billing", version=1).steps) == len(STEPS)  # what the contact ran
    assert ScriptRun.objects.get(interaction_id=iid).script.version == 1


def test_a_quality_review_sees_how_far_the_contact_followed_its_script(handled):
    from quality import services as quality_services

    ann, iid = handled
    api = client_for(ann.user)
    for key in ("greeting", "identity"):
        api.post(f"/api/v1/interactions/{iid}/script/steps/", {"step": key}, format="json")
    interaction_services.interaction_end(interaction_id=iid, reason="resolved", meta=M)
    interaction_services.interaction_wrap_up(interaction_id=iid, disposition="fixed", meta=M)
    card = quality_services.scorecard_save(name="c", form={"sections": [{"name": "s", "weight": 1, "criteria": [
        {"key": "identity", "text": "Verified identity", "type": "yes_no"}]}]})
    staff = get_user_model().objects.create_user(username="qa", password="x", is_staff=True)
    evaluation = quality_services.evaluation_submit(scorecard_id=card.id, interaction_id=iid, reviewer="qa",
                                                    answers={"identity": "yes"}, meta=M)
    detail = client_for(staff).get(f"/api/v1/evaluations/{evaluation.id}/").json()
    assert detail["script"]["script"] == "Billing"
    assert set(detail["script"]["completed"]) == {"greeting", "identity"}
    assert (detail["script"]["required_done"], detail["script"]["required_total"]) == (2, 4)
