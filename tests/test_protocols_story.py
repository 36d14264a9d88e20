"""Issue 7's done-when, through the API, for one customer: an abusive chat is flagged, warned, ended by protocol
and reported (readable by the supervisor and compliance only); a dropped call turns into a callback that reaches
the same agent; a refund above the agent's limit waits for the supervisor's approval; and all of it is on the
customer's timeline."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from authority.models import AuthorityLimit
from events import store
from events.projection import apply_envelopes
from events.projection import get as get_projection
from followups import services as followups
from followups.models import Callback
from intelligence.models import FlagPolicy, FlagTerm
from interactions.models import Interaction
from routing import services as routing_services
from tests.conftest import client_for
from tests.interactions.test_webhooks import call, ok
from tests.interactions.test_webhooks import secrets  # noqa: F401  (the signing secrets fixture)
from tests.routing.factories import make_agent, make_queue

pytestmark = pytest.mark.django_db(transaction=True)
PHONE = {"kind": "phone", "value": "+44 20 7946 0958"}


def test_the_abusive_chat_the_dropped_call_and_the_refund_above_the_limit_all_on_the_timeline(settings):
    settings.ABUSE_WARNINGS_REQUIRED, settings.SENTIMENT_FLAG_THRESHOLD = 2, -1.0
    FlagTerm.objects.get_or_create(term="idiot", kind="abuse")
    FlagPolicy.objects.update_or_create(kind="abuse", defaults={"alert_supervisors": True})
    AuthorityLimit.objects.all().delete()
    AuthorityLimit.objects.create(kind="refund", per_action=Decimal("50"), per_day=Decimal("200"))
    make_queue("support")
    ann = make_agent("ann", capacity={"chat": 1, "voice": 1})
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    auditor = get_user_model().objects.create_user(username="audit", password="x")
    auditor.groups.add(Group.objects.get_or_create(name="compliance")[0])
    from django.contrib.auth.models import Permission

    Group.objects.get(name="compliance").permissions.add(Permission.objects.get(codename="read_incident_reports"))
    bob = make_agent("bob", presence="offline")
    api, boss_api = client_for(ann.user), client_for(boss)

    # 1. The abusive chat: flagged as it arrives, warned twice, ended by protocol, reported.
    chat = ok("chat", {"provider_message_id": "m1", "event": "start", "conversation_id": "s1", "from": PHONE,
                       "queue": "support"})["interaction"]
    routing_services.dispatch()
    assert api.post(f"/api/v1/interactions/{chat['id']}/accept/", format="json").status_code == 200
    ok("chat", {"provider_message_id": "m2", "conversation_id": "s1", "body": "You idiot, fix my bill"}, status=201)
    assert api.get(f"/api/v1/interactions/{chat['id']}/mood/").json()["flags"] == ["abuse"]
    end = {"reason": "agent_ended_abuse"}
    assert api.post(f"/api/v1/interactions/{chat['id']}/end/", end, format="json").status_code == 409
    for text in ("Please keep it civil.", "Last warning."):
        assert api.post(f"/api/v1/interactions/{chat['id']}/warn/", {"reason": "abuse", "text": text},
                        format="json").status_code == 200
    assert api.post(f"/api/v1/interactions/{chat['id']}/end/", end, format="json").status_code == 200
    apply_envelopes(get_projection("customers.directory"), store.read_all(limit=10_000))
    filed = api.post("/api/v1/incidents/", {
        "interaction_id": chat["id"], "kind": "abuse", "description": "Insults.", "agent_responses": "Calm.",
        "deescalation_steps": "Acknowledged; offered a supervisor.", "action_taken": "ended_contact",
        "supervisor": "boss"}, format="json")
    assert filed.status_code == 201, filed.content
    report = f"/api/v1/incidents/{filed.json()['id']}/"
    assert boss_api.get(report).status_code == 200 and client_for(auditor).get(report).status_code == 200
    assert client_for(bob.user).get(report).status_code == 404
    assert api.post(f"/api/v1/interactions/{chat['id']}/wrap-up/", {"disposition": "abusive"},
                    format="json").status_code == 200

    # 2. The same customer calls; the call drops; the callback reaches ann, not the free and as able bob.
    voice = ok("voice", call("ringing", "c1", queue="support", **{"from": PHONE}))["interaction"]
    assert voice["customer_id"] == chat["customer_id"]
    ok("voice", call("answered", "c1", agent_id="ann"))
    ok("voice", call("ended", "c1", reason="technical_drop", duration_seconds=40))
    callback = Callback.objects.get(origin_interaction_id=voice["id"])
    assert (callback.agent_id, callback.reason) == ("ann", "technical_drop")
    assert api.post(f"/api/v1/interactions/{voice['id']}/wrap-up/", {"disposition": "dropped"},
                    format="json").status_code == 200
    client_for(bob.user).post("/api/v1/agents/me/presence/", {"presence": "available"}, format="json")
    assert followups.callbacks_due(now=timezone.now() + dt.timedelta(seconds=600)) == 1
    callback.refresh_from_db()
    routing_services.dispatch()
    assert Interaction.objects.get(id=callback.interaction_id).agent_id == "ann"
    assert api.post(f"/api/v1/interactions/{callback.interaction_id}/accept/", format="json").status_code == 200

    # 3. On the callback, a refund above ann's limit waits for the supervisor.
    pending = api.post(f"/api/v1/interactions/{callback.interaction_id}/actions/",
                       {"kind": "refund", "amount": "120.00", "reason": "double charge"}, format="json").json()
    assert pending["status"] == "pending" and pending["expected_by"]
    assert boss_api.post(f"/api/v1/approvals/{pending['id']}/approve/", {"note": "ok"},
                         format="json").json()["status"] == "done"

    # 4. All of it on the customer's timeline.
    apply_envelopes(get_projection("customers.timeline"), store.read_all(limit=10_000))
    timeline = boss_api.get(f"/api/v1/customers/{chat['customer_id']}/timeline/?limit=200").json()
    entries = timeline["results"] if isinstance(timeline, dict) else timeline
    kinds = {e["event_type"] for e in entries}
    assert {"intelligence.RedFlagRaised", "interactions.WarningGiven", "interactions.InteractionEnded",
            "incidents.IncidentReported", "incidents.IncidentRead", "followups.CallbackScheduled",
            "followups.CallbackStarted", "authority.ApprovalRequested", "authority.ApprovalDecided",
            "authority.ActionTaken"} <= kinds, sorted(kinds)
