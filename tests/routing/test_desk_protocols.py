"""The desk's protocols, end to end in headless Chromium against a real daphne (docs/PROTOCOLS.md).

An abusive customer writes in on the signed chat webhook; the agent accepts
and sees the red flags (one raised before the offer, one live); ending for
abuse is refused until the required warnings are on record; the agent warns,
escalates to the supervisors, ends for abuse, files an incident report (after
the API named the field left out), asks for a refund above their limit and
sees it approved by a supervisor, promises a callback and wraps up.
"""

import datetime as dt
import importlib
import json
import pkgutil
import time
import urllib.request
import uuid

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from authority.models import Action
from authority.services import limits_for
from events import store
from followups.models import Callback, Escalation
from incidents.models import IncidentReport
from intelligence.models import Mood
from interactions import webhooks
from interactions.models import Interaction
from routing import services
from tests.conftest import client_for
from tests.routing.factories import make_agent, make_queue
from tests.routing.test_pages import browser, sign_in  # noqa: F401  (the Chromium fixture, and signing in)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def seeded():
    """The flag terms and policies and the authority limits the migrations seed (a transactional test's flush
    removed them)."""
    import authority.migrations
    import intelligence.migrations
    from django.apps import apps

    for package in (intelligence.migrations, authority.migrations):
        for name in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):
            seed = getattr(importlib.import_module(f"{package.__name__}.{name}"), "seed", None)
            if seed:
                seed(apps, None)


def chat(web: str, conversation_id: str, body: str, **extra) -> dict:
    """A chat message from the provider `sim`, signed with the secret the `web` fixture's daphne has."""
    raw = json.dumps({"provider_message_id": uuid.uuid4().hex, "conversation_id": conversation_id, "body": body,
                      **extra}).encode()
    ts = str(int(time.time()))
    request = urllib.request.Request(f"{web}/api/v1/webhooks/chat/sim/", data=raw, method="POST", headers={
        "Content-Type": "application/json", "X-Timestamp": ts, "X-Signature": webhooks.sign("sim-secret", ts, raw)})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def events_of(stream_id) -> list:
    return store.read_stream(uuid.UUID(str(stream_id)))


def test_an_agent_carries_out_the_abuse_protocol_and_an_approval_from_the_desk(web, browser, topic, background,
                                                                               seeded):
    from playwright.sync_api import expect

    # The real path behind the desk's customer context and timeline: outbox -> Kafka -> projectors -> pushes.
    background.relay()
    background.projector("customers.directory")
    background.projector("customers.timeline")

    make_queue("support")
    ann = make_agent("ann", presence="offline")
    ann.user.set_password("ann")
    ann.user.save()
    bob = make_agent("bob", presence="offline")  # another agent: the report is not his to read
    boss = get_user_model().objects.create_user(username="boss", password="boss", is_staff=True)
    required = settings.ABUSE_WARNINGS_REQUIRED  # the web process reads the same environment

    desk = sign_in(browser, web, "ann", "/desk/")
    desk.get_by_test_id("set-available").click()
    expect(desk.get_by_test_id("presence")).to_have_text("available")

    # Red flags: one raised by the first message (before anyone had the chat), one live while ann has it.
    arrived = chat(web, "rude-1", "You useless idiot, where is my refund?", event="start", queue="support",
                   **{"from": {"kind": "email", "value": "rude@example.com"}})
    iid = arrived["interaction"]["id"]
    assert services.work_route(interaction_id=uuid.UUID(iid)).agent_id == "ann"
    expect(desk.get_by_test_id("offer-channel")).to_have_text("chat · support")
    desk.get_by_test_id("accept").click()
    expect(desk.get_by_test_id("flag-abuse")).to_have_text("abuse")
    mood = Mood.objects.get(interaction_id=iid)
    assert mood.flags[0] == "abuse" and mood.running < 0
    expect(desk.get_by_test_id("mood-running")).to_have_text(f"{mood.running:.2f} (negative)")
    expect(desk.get_by_test_id("flag-threat")).to_have_count(0)
    chat(web, "rude-1", "I will find you, mark my words")
    expect(desk.get_by_test_id("flag-threat")).to_have_text("threat")
    expect(desk.get_by_test_id("flag-notes")).to_contain_text("threat: “i will find you”")
    expect(desk.get_by_test_id("flag-notes")).to_contain_text("supervisors alerted")
    raised = [e.data["kind"] for e in events_of(iid) if e.event_type == "intelligence.RedFlagRaised"]
    assert raised[:1] == ["abuse"] and "threat" in raised

    # Ending for abuse before the warnings: refused, and the agent is told why.
    desk.get_by_test_id("end-reason").select_option("agent_ended_abuse")
    desk.get_by_test_id("end").click()
    expect(desk.get_by_test_id("end-message")).to_contain_text(
        f"Not yet: ending for abuse needs {required} warning(s) on record first (0 given)")
    assert Interaction.objects.get(id=iid).status == "active"

    for n in range(1, required + 1):
        desk.get_by_test_id("warn-reason").select_option("abuse")
        desk.get_by_test_id("warn-text").fill(f"Warning {n}: keep it civil or I will end this chat.")
        desk.get_by_test_id("warn").click()
        expect(desk.get_by_test_id("warnings-count")).to_have_text(str(n))
    warnings = [e.data for e in events_of(iid) if e.event_type == "interactions.WarningGiven"]
    assert [(w["reason"], w["text"][:9]) for w in warnings] == [("abuse", f"Warning {n}") for n in
                                                                 range(1, required + 1)]

    # Escalate to the supervisors: the response time to tell the customer is the one on record.
    desk.get_by_test_id("escalate-reason").fill("Abusive, and a threat")
    desk.get_by_test_id("escalate-minutes").fill("10")
    desk.get_by_test_id("escalate").click()
    expect(desk.get_by_test_id("escalation-result")).to_contain_text("Escalated to the supervisors.")
    escalation = Escalation.objects.get(interaction_id=iid)
    assert (escalation.target, escalation.agent_id) == ("supervisor", "ann")
    assert abs((escalation.respond_by - timezone.now()) - dt.timedelta(minutes=10)) < dt.timedelta(seconds=30)
    told = desk.evaluate("iso => when(iso)", escalation.respond_by.isoformat())
    expect(desk.get_by_test_id("escalation-result")).to_contain_text(
        f"Tell the customer to expect a response by {told} (within 10 minutes).")

    # Now ending for abuse is allowed (the reason is still chosen).
    desk.get_by_test_id("end").click()
    expect(desk.get_by_test_id("work-meta")).to_have_text("chat · wrap_up")
    expect(desk.get_by_test_id("end-message")).to_be_hidden()
    expect(desk.get_by_test_id("warn-form")).to_be_hidden()
    assert Interaction.objects.get(id=iid).status == "wrap_up"
    ended = [e.data["reason"] for e in events_of(iid) if e.event_type == "interactions.InteractionEnded"]
    assert ended == ["agent_ended_abuse"]

    # The incident report: the kind and action come prefilled from the ending; a missing field is named.
    expect(desk.get_by_test_id("incident-kind")).to_have_value("abuse")
    expect(desk.get_by_test_id("incident-action")).to_have_value("ended_contact")
    desk.get_by_test_id("incident-responses").fill("Stayed calm and warned twice.")
    desk.get_by_test_id("incident-deescalation").fill("Acknowledged the frustration, offered a supervisor.")
    desk.get_by_test_id("incident-supervisor").fill("boss")
    desk.get_by_test_id("incident-file").click()
    expect(desk.get_by_test_id("incident-error-description")).to_have_text("This field may not be blank.")
    expect(desk.get_by_test_id("incident-result")).to_have_text("Check the fields marked.")
    assert not IncidentReport.objects.exists()
    desk.get_by_test_id("incident-description").fill("Called me a useless idiot, then: I will find you.")
    desk.get_by_test_id("incident-file").click()
    report_id = desk.get_by_test_id("incident-id").inner_text()
    expect(desk.get_by_test_id("incident-error-description")).to_have_count(0)
    report = IncidentReport.objects.get(id=report_id)
    assert (report.interaction_id, report.agent_id, report.kind, report.action_taken, report.supervisor) == (
        uuid.UUID(iid), "ann", "abuse", "ended_contact", "boss")
    assert len(report.warnings) == required and "useless idiot" in report.description
    assert client_for(bob.user).get(f"/api/v1/incidents/{report_id}/").status_code == 404
    assert client_for(boss).get(f"/api/v1/incidents/{report_id}/").status_code == 200

    # A refund above ann's limit waits for a supervisor; the approval reaches the desk on its socket.
    per_action, _per_day = limits_for(ann.user, "refund")
    amount = per_action + 70
    desk.get_by_test_id("action-kind").select_option("refund")
    desk.get_by_test_id("action-amount").fill(str(amount))
    desk.get_by_test_id("action-reason").fill("Parcel lost twice")
    desk.get_by_test_id("act").click()
    expect(desk.get_by_test_id("action-status")).to_contain_text("pending — tell the customer to expect an answer by")
    action = Action.objects.get(interaction_id=iid)
    assert (action.kind, action.amount, action.status) == ("refund", amount, Action.PENDING)
    by = desk.evaluate("iso => when(iso)", action.expected_by.isoformat())
    expect(desk.get_by_test_id("action-status")).to_have_text(
        f"pending — tell the customer to expect an answer by {by}")
    expect(desk.get_by_test_id("action")).to_contain_text(f"refund {amount}:")
    approved = client_for(boss).post(f"/api/v1/approvals/{action.id}/approve/", {"note": "fine"}, format="json")
    assert approved.status_code == 200, approved.content
    expect(desk.get_by_test_id("action-status")).to_have_text("approved by boss: done")
    assert [e.event_type for e in events_of(action.id)] == [
        "authority.ApprovalRequested", "authority.ApprovalDecided", "authority.ActionTaken"]

    # A callback promised to the customer, from this contact.
    desk.get_by_test_id("callback-note").fill("Confirm the refund arrived")
    desk.get_by_test_id("callback-promise").click()
    expect(desk.get_by_test_id("callback-result")).to_contain_text("Callback promised for")
    callback = Callback.objects.get(origin_interaction_id=iid)
    assert (callback.agent_id, callback.reason, str(callback.customer_id)) == (
        "ann", "promised", arrived["interaction"]["customer_id"])
    assert dt.timedelta(minutes=55) < callback.due_at - timezone.now() < dt.timedelta(minutes=61)

    desk.get_by_test_id("disposition").fill("abuse.ended")
    desk.get_by_test_id("wrap-up").click()
    expect(desk.get_by_test_id("done")).to_have_text("Wrapped up.")
    expect(desk.get_by_test_id("protocols")).to_be_hidden()
    expect(desk.get_by_test_id("presence")).to_have_text("available")
