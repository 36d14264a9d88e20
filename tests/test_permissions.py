"""The permission matrix: every endpoint of the API, for every role, against another team's objects.

Two teams: ann (agent, team A, queue billing) supervised by sup_a; bob (agent, team B, queue support) supervised
by sup_b. Every object in the URLs and bodies below is bob's (his contact, his customer, his reports and
promises). Each role must get exactly what contactcenter/access.py promises: ann and sup_a a 404 (bob's objects
do not exist for them), bob and sup_b their answer, compliance reads but no commands, the admin everything, a
signed-in user with no role nothing, and an anonymous caller 401. "ok" means the request passed the gate: any
answer but 401, 403 and 404 (a 400 or 409 about the body or the state is fine here; the behaviour itself is
tested elsewhere). The test fails when the schema has an endpoint this table does not list, so a new endpoint
cannot ship without its row.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.test import APIClient

from authority import services as authority_services
from contactcenter.models import AuditEntry
from customers.identity import identity
from events.store import Actor, Metadata
from followups import services as followup_services
from incidents import services as incident_services
from interactions import services as interaction_services
from quality import services as quality_services
from quality.models import Survey
from routing.models import Team
from tests.conftest import client_for
from tests.routing.factories import make_agent, make_queue

pytestmark = pytest.mark.django_db

M = Metadata(actor=Actor("system", name="test"))
ROLES = ("anon", "nobody", "ann", "sup_a", "bob", "sup_b", "compliance", "admin")
FORM = {"sections": [{"name": "Opening", "weight": 100, "criteria": [{"key": "greeted", "type": "yes_no"}]}]}


def _handled(agent: str, queue: str, email: str, *, wrap_up: bool = False):
    made = interaction_services.interaction_create(
        channel="chat", direction="inbound", meta=M, ident=identity("email", email), queue=queue)
    iid = made.interaction.id
    interaction_services.interaction_offer(interaction_id=iid, agent_id=agent, meta=M)
    interaction_services.interaction_accept(interaction_id=iid, agent_id=agent, meta=M)
    if wrap_up:
        interaction_services.interaction_end(interaction_id=iid, reason="resolved", meta=M)
        interaction_services.interaction_wrap_up(interaction_id=iid, disposition="done", meta=M)
    from interactions.models import Interaction

    return Interaction.objects.get(id=iid)


@pytest.fixture
def world(settings):
    settings.SURVEY_KIND = "csat"
    settings.WEBHOOK_SECRETS = {"test": "s3cret"}
    from frameworks.models import Script

    # The migration seeds this script; a transactional test (the fuzzer's) may run after a flush that removed it.
    steps = importlib.import_module("frameworks.migrations.0002_standard_script").STEPS
    Script.objects.get_or_create(name="Standard contact", active=True,
                                 defaults={"version": 1, "steps": steps, "dispositions": ["general"]})
    Script.objects.filter(name="Standard contact", active=True).update(queues=["support"])
    make_queue("billing", skills={"billing": 1})
    make_queue("support", skills={"support": 1})
    team_a, team_b = Team.objects.create(name="A"), Team.objects.create(name="B")
    ann = make_agent("ann", skills={"billing": 3}, team=team_a, presence="offline")
    bob = make_agent("bob", skills={"support": 3}, team=team_b, presence="offline")
    users = get_user_model().objects
    sup_a, sup_b = users.create_user("sup_a", password="x"), users.create_user("sup_b", password="x")
    team_a.supervisors.add(sup_a)
    team_b.supervisors.add(sup_b)
    compliance = users.create_user("compliance", password="x")
    compliance.groups.add(Group.objects.get(name="compliance"))
    nobody = users.create_user("nobody", password="x")
    admin = users.create_user("admin", password="x", is_staff=True)
    for agent in (ann, bob):
        agent.user.groups.add(Group.objects.get(name="agent"))

    mine = _handled("bob", "support", "bob-customer@example.com")
    done = _handled("bob", "support", "bob-customer@example.com", wrap_up=True)
    _handled("ann", "billing", "ann-customer@example.com")
    survey = Survey.objects.filter(interaction_id=done.id).first() or quality_services.survey_send(interaction=done)
    report = incident_services.incident_file(
        interaction_id=mine.id, filed_by="bob", kind="abuse", description="shouting", agent_responses="calm",
        deescalation_steps="warned", action_taken="warned", supervisor="sup_b", meta=M)
    due = timezone.now() + dt.timedelta(hours=1)
    callback = followup_services.callback_schedule(customer_id=mine.customer_id, reason="promised", due_at=due,
                                                   agent_id="bob", origin_interaction_id=mine.id, meta=M)
    followup = followup_services.followup_create(agent_id="bob", due_at=due, note="ring back", meta=M,
                                                 interaction_id=mine.id)
    escalation = followup_services.escalate(interaction_id=mine.id, agent_id="bob", target="supervisor",
                                            reason="angry", respond_within_minutes=30, meta=M)
    from frameworks import services as framework_services

    framework_services.step_complete(interaction_id=mine.id, agent_id="bob", step="identity", answer="", meta=M)
    action = authority_services.action_request(interaction_id=mine.id, user=bob.user, kind="refund",
                                               amount=Decimal("100000"), reason="broken", meta=M)
    card = quality_services.scorecard_save(name="chat", form=FORM)
    evaluation = quality_services.evaluation_submit(scorecard_id=card.id, interaction_id=done.id, reviewer="sup_b",
                                                    answers={"greeted": "yes"}, meta=M)
    from routing.models import Simulation

    simulation = Simulation.objects.create(requested_by="sup_b", start=due - dt.timedelta(days=2),
                                           end=due - dt.timedelta(days=1))
    from events.projection import all_projections
    from events.replay import replay

    for projection in all_projections():  # the read models the customer endpoints serve
        if projection.name.startswith("customers."):
            replay(projection, progress=False)
    clients = {"anon": APIClient(), "nobody": client_for(nobody), "ann": client_for(ann.user),
               "sup_a": client_for(sup_a), "bob": client_for(bob.user), "sup_b": client_for(sup_b),
               "compliance": client_for(compliance), "admin": client_for(admin)}
    ids = {"interaction_id": mine.id, "id": mine.id, "customer_id": mine.customer_id, "agent_id": "bob",
           "name": "support", "report_id": report.id, "callback_id": callback.id, "followup_id": followup.id,
           "escalation_id": escalation.id, "action_id": action.id, "evaluation_id": evaluation.id,
           "survey_id": survey.id, "stream_id": mine.id, "provider": "test", "channel": "chat",
           "simulation_id": simulation.id}
    soon = due.isoformat()
    bodies = {  # a command naming bob's objects in its body, valid otherwise
        "/api/v1/interactions/": {"channel": "chat", "customer_id": str(mine.customer_id)},
        "/api/v1/callbacks/": {"customer_id": str(mine.customer_id), "reason": "promised", "due_at": soon,
                               "origin_interaction_id": str(mine.id)},
        "/api/v1/followups/": {"interaction_id": str(mine.id), "due_at": soon, "note": "ring back"},
        "/api/v1/incidents/": {"interaction_id": str(mine.id), "kind": "abuse", "description": "d",
                               "agent_responses": "r", "deescalation_steps": "s", "action_taken": "warned",
                               "supervisor": "sup_b"},
        "/api/v1/evaluations/": {"scorecard": card.id, "interaction_id": str(done.id), "answers": {"greeted": "no"}},
        "/api/v1/routing/simulations/": {"from": (due - dt.timedelta(days=2)).isoformat(),
                                         "to": (due - dt.timedelta(days=1)).isoformat()},
    }
    queries = {"/api/v1/evaluations/calibration/": {"interaction_id": str(done.id)},
               "/api/v1/reports/kpis/": {"metric": "fcr", "from": "2026-01-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"}}
    return {"clients": clients, "ids": ids, "bodies": bodies, "queries": queries, "mine": mine, "done": done}


OK = "ok"
# Who gets what. Shorthands for the usual shapes, then one row per endpoint.
ANY = {r: OK for r in ROLES} | {"anon": 401}
SIGNED_IN_LIST = ANY  # a list: everyone signed in gets one (what is *in* it is checked below)
READ_BOBS = {"anon": 401, "nobody": 404, "ann": 404, "sup_a": 404, "bob": OK, "sup_b": OK, "compliance": OK,
             "admin": OK}
COMMAND_BOBS = READ_BOBS | {"compliance": 404}
PROMISE_BOBS = READ_BOBS | {"nobody": 403, "compliance": 403}  # a role that commands nothing: 403 first
SUPERVISE_BOBS = {"anon": 401, "nobody": 403, "ann": 403, "sup_a": 404, "bob": 403, "sup_b": OK,
                  "compliance": 403, "admin": OK}
SUPERVISORS = {"anon": 401, "nobody": 403, "ann": 403, "sup_a": OK, "bob": 403, "sup_b": OK, "compliance": 403,
               "admin": OK}
ADMIN_ONLY = {r: 403 for r in ROLES} | {"anon": 401, "admin": OK}
ROLE_COMMAND = {"anon": 401, "nobody": 403, "ann": OK, "sup_a": OK, "bob": OK, "sup_b": OK, "compliance": 403,
                "admin": OK}
SIGNED_WEBHOOK = {r: 401 for r in ROLES}  # no signature: refused whoever calls

MATRIX: dict[tuple[str, str], dict] = {
    ("get", "/api/v1/agents/"): SIGNED_IN_LIST,
    ("get", "/api/v1/agents/{agent_id}/"): READ_BOBS | {"compliance": OK},
    ("post", "/api/v1/agents/{agent_id}/presence/"): READ_BOBS | {"compliance": 403},
    ("get", "/api/v1/agents/{agent_id}/state/"): READ_BOBS | {"compliance": OK},
    ("get", "/api/v1/approvals/"): SIGNED_IN_LIST,
    ("post", "/api/v1/approvals/{action_id}/approve/"): SUPERVISE_BOBS,
    ("post", "/api/v1/approvals/{action_id}/reject/"): SUPERVISE_BOBS,
    ("get", "/api/v1/callbacks/"): SIGNED_IN_LIST,
    # About bob's customer: 404 for those who cannot see them; compliance reads promises, makes none.
    ("post", "/api/v1/callbacks/"): PROMISE_BOBS,
    ("post", "/api/v1/callbacks/{callback_id}/cancel/"): PROMISE_BOBS,
    ("get", "/api/v1/customers/"): SIGNED_IN_LIST,
    ("post", "/api/v1/customers/"): ROLE_COMMAND,
    ("get", "/api/v1/customers/{customer_id}/"): READ_BOBS,
    ("patch", "/api/v1/customers/{customer_id}/"): COMMAND_BOBS,
    ("get", "/api/v1/customers/{customer_id}/context/"): READ_BOBS,
    ("get", "/api/v1/customers/{customer_id}/timeline/"): READ_BOBS,
    ("get", "/api/v1/customers/{customer_id}/export/"): {r: 404 for r in ROLES} | {"anon": 401, "compliance": OK,
                                                                                    "admin": OK},
    ("post", "/api/v1/customers/{customer_id}/erase/"): ADMIN_ONLY,
    ("post", "/api/v1/customers/{customer_id}/merge/"): ADMIN_ONLY,
    ("post", "/api/v1/customers/{customer_id}/unmerge/"): ADMIN_ONLY,
    ("get", "/api/v1/escalations/"): SIGNED_IN_LIST,
    ("post", "/api/v1/escalations/{escalation_id}/accept/"): SUPERVISE_BOBS,
    ("get", "/api/v1/evaluations/"): SIGNED_IN_LIST,
    ("post", "/api/v1/evaluations/"): {"anon": 401, "nobody": 403, "ann": 403, "sup_a": 404, "bob": 403,
                                       "sup_b": OK, "compliance": 403, "admin": OK},
    # An evaluation is the agent's and their reviewers' (not compliance's): only the agent answers it.
    ("get", "/api/v1/evaluations/{evaluation_id}/"): READ_BOBS | {"compliance": 404},
    ("post", "/api/v1/evaluations/{evaluation_id}/acknowledge/"): READ_BOBS | {"sup_b": 403, "compliance": 404,
                                                                               "admin": 403},
    ("post", "/api/v1/evaluations/{evaluation_id}/dispute/"): READ_BOBS | {"sup_b": 403, "compliance": 404,
                                                                           "admin": 403},
    ("post", "/api/v1/evaluations/{evaluation_id}/resolve/"): SUPERVISE_BOBS,
    ("get", "/api/v1/evaluations/calibration/"): SUPERVISE_BOBS,
    ("get", "/api/v1/evaluations/queue/"): SUPERVISORS,
    ("get", "/api/v1/events/"): ADMIN_ONLY,
    ("get", "/api/v1/events/streams/{stream_id}/"): ADMIN_ONLY,
    ("get", "/api/v1/followups/"): SIGNED_IN_LIST,
    ("post", "/api/v1/followups/"): PROMISE_BOBS,
    ("post", "/api/v1/followups/{followup_id}/cancel/"): PROMISE_BOBS,
    ("post", "/api/v1/followups/{followup_id}/done/"): PROMISE_BOBS,
    ("get", "/api/v1/incidents/"): SIGNED_IN_LIST,
    ("post", "/api/v1/incidents/"): READ_BOBS | {"compliance": 403},  # compliance reads reports, files none
    ("get", "/api/v1/incidents/{report_id}/"): READ_BOBS,
    ("post", "/api/v1/incidents/{report_id}/amend/"): READ_BOBS | {"compliance": 403},  # reads, never amends
    ("get", "/api/v1/interactions/"): SIGNED_IN_LIST,
    # Starting a contact for a customer id you may not see: 404 (a caller's phone number or email, `identity`,
    # reaches any customer: that is how a contact starts).
    ("post", "/api/v1/interactions/"): COMMAND_BOBS | {"nobody": 403, "compliance": 403},
    ("get", "/api/v1/interactions/{id}/"): READ_BOBS,
    ("post", "/api/v1/interactions/{interaction_id}/actions/"): COMMAND_BOBS,
    ("post", "/api/v1/interactions/{interaction_id}/escalate/"): COMMAND_BOBS,
    ("get", "/api/v1/interactions/{interaction_id}/mood/"): READ_BOBS,
    ("get", "/api/v1/interactions/{interaction_id}/routing/"): READ_BOBS,
    ("get", "/api/v1/interactions/{interaction_id}/script/"): READ_BOBS,
    ("post", "/api/v1/interactions/{interaction_id}/script/"): COMMAND_BOBS,
    ("post", "/api/v1/interactions/{interaction_id}/script/steps/"): COMMAND_BOBS,
    **{("post", f"/api/v1/interactions/{{id}}/{verb}/"): COMMAND_BOBS
       for verb in ("abandon", "accept", "decline", "end", "hold", "messages", "offer", "queue", "reopen", "resume",
                    "transfer", "warn", "wrap-up")},
    ("get", "/api/v1/promises/"): SIGNED_IN_LIST,
    ("get", "/api/v1/queues/"): SIGNED_IN_LIST,
    ("get", "/api/v1/queues/{name}/"): READ_BOBS,
    ("get", "/api/v1/queues/{name}/stats/"): READ_BOBS,
    ("get", "/api/v1/queues/{name}/state/"): READ_BOBS,
    ("get", "/api/v1/reports/kpis/"): SUPERVISORS,
    ("get", "/api/v1/reports/kpis/drilldown/"): SUPERVISORS,  # no query: a 400 for those who pass the gate
    ("get", "/api/v1/routing/simulations/"): SUPERVISORS,
    ("post", "/api/v1/routing/simulations/"): SUPERVISORS,
    ("get", "/api/v1/routing/simulations/{simulation_id}/"): SUPERVISORS | {"sup_a": 404},  # sup_b's own
    ("get", "/api/v1/scorecards/"): SIGNED_IN_LIST,
    ("post", "/api/v1/scorecards/"): ADMIN_ONLY,
    ("get", "/api/v1/surveys/{survey_id}/"): {"anon": 401, "nobody": 403, "ann": 403, "sup_a": 404, "bob": 403,
                                             "sup_b": OK, "compliance": 403, "admin": OK},
    ("post", "/api/v1/surveys/{survey_id}/answer/"): ADMIN_ONLY,
    ("post", "/api/v1/surveys/webhook/{provider}/"): SIGNED_WEBHOOK,
    ("post", "/api/v1/webhooks/{channel}/{provider}/"): SIGNED_WEBHOOK,
}
# Endpoints of the platform itself, with their own tests (tests/test_observability.py, tests/test_sockets_trust.py).
ELSEWHERE = {("get", "/metrics"), ("post", "/api/v1/ws-tickets/")}


def _schema_operations() -> set[tuple[str, str]]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {(method, path) for path, ops in schema["paths"].items() for method in ops
            if method in ("get", "post", "put", "patch", "delete")}


def test_every_endpoint_of_the_schema_has_a_row():
    missing = _schema_operations() - set(MATRIX) - ELSEWHERE
    assert not missing, f"add these endpoints to the permission matrix: {sorted(missing)}"


def _outcome(status: int) -> object:
    return status if status in (401, 403, 404) else OK


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_the_matrix(world, method, path):
    url = path.format(**world["ids"])
    expected = MATRIX[(method, path)]
    seen = {}
    for role in ROLES:
        client = world["clients"][role]
        if method in ("post", "patch"):
            response = getattr(client, method)(url, json.dumps(world["bodies"].get(path, {})),
                                               content_type="application/json")
        else:
            response = client.get(url, world["queries"].get(path, {}))
        assert response.status_code < 500, (role, response.status_code, response.content[:300])
        seen[role] = _outcome(response.status_code)
    assert seen == expected, f"{method.upper()} {path}"


LISTS = ["/api/v1/interactions/", "/api/v1/customers/", "/api/v1/callbacks/", "/api/v1/followups/",
         "/api/v1/escalations/", "/api/v1/approvals/", "/api/v1/incidents/", "/api/v1/evaluations/",
         "/api/v1/promises/", "/api/v1/agents/"]


@pytest.mark.parametrize("url", LISTS)
def test_lists_hold_only_what_is_in_scope(world, url):
    """Bob's objects show in bob's, sup_b's and the admin's lists, never in ann's, sup_a's or a no-role user's."""
    marks = [str(world["mine"].id), str(world["mine"].customer_id), '"bob"']
    for role in ("ann", "sup_a", "nobody"):
        text = world["clients"][role].get(url).content.decode()
        assert not any(mark in text for mark in marks), (role, url, text[:300])
    for role in ("bob", "sup_b", "admin"):
        text = world["clients"][role].get(url).content.decode()
        assert any(mark in text for mark in marks), (role, url, text[:300])


def test_every_denial_and_every_sensitive_read_is_on_record(world):
    ann, sup_b = world["clients"]["ann"], world["clients"]["sup_b"]
    report = world["ids"]["report_id"]
    before = AuditEntry.objects.count()
    assert ann.get(f"/api/v1/incidents/{report}/").status_code == 404
    assert ann.post(f"/api/v1/interactions/{world['mine'].id}/hold/").status_code == 404
    assert world["clients"]["nobody"].get("/api/v1/events/").status_code == 403
    assert APIClient().get("/api/v1/interactions/").status_code == 401
    assert sup_b.get(f"/api/v1/incidents/{report}/").status_code == 200
    entries = list(AuditEntry.objects.order_by("id"))[before:]
    assert [(e.outcome, e.username, e.object_type) for e in entries] == [
        ("denied", "ann", "incident_report"), ("denied", "ann", "interaction"), ("denied", "nobody", ""),
        ("denied", "", ""), ("read", "sup_b", "incident_report")]
    assert entries[0].object_id == str(report) and entries[1].action.startswith("POST /api/v1/interactions/")


def test_the_audit_log_is_append_only(world):
    from django.db import DatabaseError, transaction

    world["clients"]["ann"].get(f"/api/v1/incidents/{world['ids']['report_id']}/")
    entry = AuditEntry.objects.latest("id")
    for change in (lambda: AuditEntry.objects.filter(id=entry.id).update(reason="nothing happened"),
                   lambda: AuditEntry.objects.filter(id=entry.id).delete()):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            change()
    assert AuditEntry.objects.get(id=entry.id).reason == entry.reason


def test_no_mass_assignment(world):
    """A field a command does not take is refused by name, never applied: nobody sets an owner or a role."""
    ann = world["clients"]["ann"]
    due = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    for url, body, field in [
        ("/api/v1/customers/", {"display_name": "Eve", "is_staff": True}, "is_staff"),
        ("/api/v1/interactions/", {"channel": "chat", "customer_id": str(uuid.uuid4()), "agent_id": "ann"},
         "agent_id"),
        ("/api/v1/callbacks/", {"customer_id": str(world["mine"].customer_id), "reason": "promised", "due_at": due,
                                "status": "completed"}, "status"),
        ("/api/v1/agents/me/presence/", {"presence": "available", "team": "B"}, "team"),
    ]:
        response = ann.post(url, body, format="json")
        assert response.status_code == 400 and field in response.json(), (url, response.content)
    assert not get_user_model().objects.get(username="ann").is_staff


def test_a_compliance_officer_made_staff_for_the_admin_stays_compliance(world):
    """Staff status opens the admin (to read the audit log); it does not make compliance an admin in the API."""
    officer = get_user_model().objects.get(username="compliance")
    officer.is_staff = True
    officer.save()
    client = world["clients"]["compliance"]
    assert client.get(f"/api/v1/incidents/{world['ids']['report_id']}/").status_code == 200
    assert client.post(f"/api/v1/interactions/{world['mine'].id}/hold/").status_code == 404
    assert client.get("/api/v1/events/").status_code == 403
    from django.test import Client

    browser = Client()
    browser.force_login(officer)
    assert browser.get("/admin/contactcenter/auditentry/").status_code == 200  # reads the audit log there
    assert browser.get("/admin/contactcenter/auditentry/1/delete/").status_code in (403, 404)


def test_the_roles_are_groups_an_admin_manages():
    from contactcenter.roles import ROLE_PERMISSIONS

    groups = {g.name: {f"{p.content_type.app_label}.{p.codename}" for p in g.permissions.all()}
              for g in Group.objects.prefetch_related("permissions__content_type")}
    assert {"agent", "supervisor", "admin", "compliance"} <= set(groups)
    for role, perms in ROLE_PERMISSIONS.items():
        assert set(perms) <= groups[role], role
    assert "contactcenter.supervise" in groups["admin"] and len(groups["admin"]) > 50
    # The supervisor group is a role in itself: a member sees their teams once named on one.
    lead = get_user_model().objects.create_user("lead", password="x")
    lead.groups.add(Group.objects.get(name="supervisor"))
    from contactcenter import access

    assert access.is_supervisor(get_user_model().objects.get(username="lead"))


def test_a_shared_queue_shows_its_waiting_work_not_the_work_another_agent_holds(world):
    """carl (team A) and bob (team B) both serve `support`. A chat waiting there is carl's to see and take; once
    bob has it, it is bob's and team B's: carl can neither read it nor end it, hold it or write in it."""
    carl = make_agent("carl", skills={"support": 3}, team=Team.objects.get(name="A"), presence="offline")
    carl.user.groups.add(Group.objects.get(name="agent"))
    carl_api, mine = client_for(carl.user), world["mine"]
    assert mine.status == "active" and mine.queue == "support"
    assert carl_api.get(f"/api/v1/interactions/{mine.id}/").status_code == 404
    assert str(mine.id) not in carl_api.get("/api/v1/interactions/", {"queue": "support"}).content.decode()
    for action, body in (("end", {"reason": "resolved"}), ("hold", {}),
                         ("messages", {"direction": "outbound", "body": "not yours"})):
        response = carl_api.post(f"/api/v1/interactions/{mine.id}/{action}/", body, format="json")
        assert response.status_code == 404, (action, response.content)
    waiting = interaction_services.interaction_create(
        channel="chat", direction="inbound", meta=M, ident=identity("email", "new@example.com"), queue="support")
    wid = waiting.interaction.id
    assert carl_api.get(f"/api/v1/interactions/{wid}/").status_code == 200
    taken = carl_api.post(f"/api/v1/interactions/{wid}/offer/", {"agent_id": "carl"}, format="json")
    assert taken.status_code == 200, taken.content
    assert world["clients"]["bob"].get(f"/api/v1/interactions/{wid}/").status_code == 200  # offered: still waiting
    assert carl_api.post(f"/api/v1/interactions/{wid}/accept/", {}, format="json").status_code == 200
    assert world["clients"]["bob"].get(f"/api/v1/interactions/{wid}/").status_code == 404  # carl's now
    from interactions.models import Interaction

    assert Interaction.objects.get(id=mine.id).status == "active"


def test_the_timeline_points_to_reports_and_evaluations_and_never_shows_them(world):
    """bob may see his customer's timeline, but the incident report and the evaluation on it are read at their
    own endpoints (where their readers are checked and reads recorded): the timeline says where, not what."""
    bob = world["clients"]["bob"]
    customer = world["mine"].customer_id
    entries = []
    for kind in ("incidents.IncidentReported", "quality.EvaluationSubmitted"):
        response = bob.get(f"/api/v1/customers/{customer}/timeline/", {"event_type": kind})
        assert response.status_code == 200
        entries += response.json()["results"]
    assert {e["event_type"] for e in entries} == {"incidents.IncidentReported", "quality.EvaluationSubmitted"}
    text = json.dumps(entries)
    assert "shouting" not in text and "greeted" not in text, text
    report = next(e for e in entries if e["stream_type"] == "incident")
    assert report["data"] == {"withheld": True, "read_at": f"/api/v1/incidents/{world['ids']['report_id']}/"}
    before = AuditEntry.objects.count()
    assert world["clients"]["sup_b"].get(report["data"]["read_at"]).json()["description"] == "shouting"
    assert AuditEntry.objects.count() == before + 1


def test_out_of_scope_and_absent_objects_get_the_same_answer(world):
    """Probing ids tells nothing: another team's survey and no survey at all read alike, and nobody learns whose
    an email is."""
    sup_a = world["clients"]["sup_a"]
    theirs = sup_a.get(f"/api/v1/surveys/{world['ids']['survey_id']}/")
    absent = sup_a.get(f"/api/v1/surveys/{uuid.uuid4()}/")
    assert theirs.status_code == absent.status_code == 404 and theirs.json() == absent.json()
    taken = world["clients"]["ann"].post("/api/v1/customers/", {"display_name": "x",
                                                                 "email": "bob-customer@example.com"}, format="json")
    assert taken.status_code == 409 and str(world["mine"].customer_id) not in taken.content.decode()
