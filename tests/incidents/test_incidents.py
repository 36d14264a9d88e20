"""Incident reports: required fields, facts from the events, immutable with amendments, read only by supervisors,
compliance and the filing agent, every read on record."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from events import store
from events.projection import apply_envelopes
from events.projection import get as get_projection
from events.store import Metadata
from interactions import services as interaction_services
from routing import services as routing_services
from tests.conftest import client_for
from tests.routing.factories import make_agent, make_queue, make_waiting

pytestmark = pytest.mark.django_db(transaction=True)
M = Metadata()


@pytest.fixture
def abusive_chat(settings):
    """ann's chat with an abusive customer: two warnings, then ended for abuse."""
    settings.ABUSE_WARNINGS_REQUIRED = 2
    make_queue("billing")
    ann = make_agent("ann")
    iid = make_waiting("billing")
    assert routing_services.work_route(interaction_id=uuid.UUID(iid)).agent_id == "ann"
    interaction_services.interaction_accept(interaction_id=iid, agent_id="ann", meta=M)
    for text in ("Please keep it civil.", "Last warning: I will end the chat."):
        interaction_services.interaction_warn(interaction_id=iid, reason="abuse", text=text, meta=M)
    interaction_services.interaction_end(interaction_id=iid, reason="agent_ended_abuse", meta=M)
    apply_envelopes(get_projection("customers.directory"), store.read_all(limit=10_000))  # contact details
    return ann, iid


def report(iid, **changes):
    return {"interaction_id": iid, "kind": "abuse", "description": "Shouted insults and swore repeatedly.",
            "agent_responses": "Stayed calm, asked twice to keep it civil.",
            "deescalation_steps": "Acknowledged the frustration, offered a supervisor.",
            "action_taken": "ended_contact", "supervisor": "boss", "follow_up_actions": "Flag the account.",
            **changes}


def test_an_agent_files_a_complete_report_with_the_contact_s_facts_from_the_events(abusive_chat):
    ann, iid = abusive_chat
    get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    bob = make_agent("bob")
    api = client_for(ann.user)
    for missing in ("description", "agent_responses", "deescalation_steps", "action_taken", "supervisor"):
        bad = api.post("/api/v1/incidents/", report(iid, **{missing: ""}), format="json")
        assert bad.status_code == 400 and missing in bad.json(), (missing, bad.content)
    not_a_supervisor = api.post("/api/v1/incidents/", report(iid, supervisor="bob"), format="json")
    assert not_a_supervisor.status_code == 400 and not_a_supervisor.json()["field"] == "supervisor"
    # ann's contact: bob (same queue) cannot see it since ann took it, so it is not there for him (404)
    assert client_for(bob.user).post("/api/v1/incidents/", report(iid), format="json").status_code == 404
    filed = api.post("/api/v1/incidents/", report(iid), format="json")
    assert filed.status_code == 201, filed.content
    body = filed.json()
    assert (body["agent_id"], body["channel"], body["action_taken"], body["supervisor"]) == (
        "ann", "chat", "ended_contact", "boss")
    assert len(body["warnings"]) == 2 and "Last warning" in body["warnings"][1]
    assert body["contact_started_at"] and "@example.com" in body["contact_details"]
    # Immutable: no way to change or delete it but an amendment.
    url = f"/api/v1/incidents/{body['id']}/"
    assert api.put(url, report(iid), format="json").status_code == 405
    assert api.delete(url).status_code == 405
    amended = api.post(f"{url}amend/", {"field": "description", "value": "He also threatened to come to the "
                                        "office.", "reason": "remembered after the call"}, format="json")
    assert amended.status_code == 200
    after = amended.json()
    assert after["description"] == "Shouted insults and swore repeatedly."  # the filed text stays
    assert after["amendments"][0]["field"] == "description" and after["amendments"][0]["by"] == "ann"
    kinds = [e.event_type for e in store.read_stream(uuid.UUID(body["id"]))]
    assert kinds == ["incidents.IncidentReported", "incidents.IncidentAmended"]


def test_only_supervisors_compliance_and_the_filing_agent_read_a_report_and_every_read_is_recorded(abusive_chat):
    ann, iid = abusive_chat
    users = get_user_model().objects
    boss = users.create_user(username="boss", password="x", is_staff=True)
    auditor = users.create_user(username="auditor", password="x")
    compliance, _ = Group.objects.get_or_create(name="compliance")
    compliance.permissions.add(Permission.objects.get(codename="read_incident_reports"))
    auditor.groups.add(compliance)
    bob, visitor = make_agent("bob"), users.create_user(username="visitor", password="x")
    rid = client_for(ann.user).post("/api/v1/incidents/", report(iid), format="json").json()["id"]
    url = f"/api/v1/incidents/{rid}/"
    allowed = {"ann": ann.user, "boss": boss, "auditor": auditor}
    for name, user in allowed.items():
        assert client_for(user).get(url).status_code == 200, name
        assert [r["id"] for r in client_for(user).get("/api/v1/incidents/").json()] == [rid], name
    for user in (bob.user, visitor):
        assert client_for(user).get(url).status_code == 404  # not 403: its existence does not leak
        assert client_for(user).get("/api/v1/incidents/").json() == []
        assert client_for(user).post(f"{url}amend/", {"field": "description", "value": "x", "reason": "y"},
                                     format="json").status_code == 404
    assert client_for(auditor).post(f"{url}amend/", {"field": "description", "value": "x", "reason": "y"},
                                    format="json").status_code == 403  # compliance reads, does not write
    reads = [e.data["by"] for e in store.read_stream(uuid.UUID(rid)) if e.event_type == "incidents.IncidentRead"]
    assert reads == ["ann", "boss", "auditor"]


def test_opening_a_report_in_the_admin_is_a_recorded_read(abusive_chat, client):
    ann, iid = abusive_chat
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True, is_superuser=True)
    rid = client_for(ann.user).post("/api/v1/incidents/", report(iid), format="json").json()["id"]
    client.force_login(boss)
    assert client.get(f"/admin/incidents/incidentreport/{rid}/change/").status_code == 200
    assert client.post(f"/admin/incidents/incidentreport/{rid}/delete/", {"post": "yes"}).status_code == 403
    reads = [e.data["by"] for e in store.read_stream(uuid.UUID(rid)) if e.event_type == "incidents.IncidentRead"]
    assert reads == ["boss"]
