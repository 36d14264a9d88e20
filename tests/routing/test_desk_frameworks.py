"""The desk's call script and promises, end to end in headless Chromium against a real daphne (docs/PROTOCOLS.md:
"Structured call frameworks", "Follow-up tasks", "Every open promise").

A chat arrives on the signed webhook in a queue with a script; the agent
accepts it and works the script on the desk: a refund is refused until
identity is verified, the decision takes the "resolve" branch, then the
refund is done; a callback and a follow-up are promised and listed, and the
follow-up is kept. A second contact follows no script until the agent
switches one on by contact reason; a follow-up past its due time is
highlighted live when the sweep marks it overdue, and the customer's next
contact is offered with what they are waiting for.
"""

import datetime as dt
import importlib
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from authority.models import Action, AuthorityLimit
from followups.models import FollowUp
from followups.services import followups_overdue
from frameworks.models import Script, ScriptRun
from interactions.models import Interaction
from routing import services
from tests.routing.factories import make_agent, make_queue
from tests.routing.test_desk_protocols import chat, events_of
from tests.routing.test_pages import browser, sign_in  # noqa: F401  (the Chromium fixture, and signing in)

pytestmark = pytest.mark.django_db(transaction=True)

# The flow the project ships ("Standard contact"): greeting, identity (gates account changes), discovery, a
# decision (resolve -> resolution; escalate -> confirmation), resolution, confirmation, closing.
STEPS = importlib.import_module("frameworks.migrations.0002_standard_script").STEPS


def ready_agent(browser, web, name):
    """An agent signed in to the desk and available."""
    from playwright.sync_api import expect

    agent = make_agent(name, presence="offline")
    agent.user.set_password(name)
    agent.user.save()
    desk = sign_in(browser, web, name, "/desk/")
    desk.get_by_test_id("set-available").click()
    expect(desk.get_by_test_id("presence")).to_have_text("available")
    return agent, desk


def arrive(web, conversation, body, queue, email, agent="ann") -> str:
    """A chat started on the signed webhook, routed (to `agent`); returns the interaction id."""
    arrived = chat(web, conversation, body, event="start", queue=queue, **{"from": {"kind": "email", "value": email}})
    iid = arrived["interaction"]["id"]
    assert services.work_route(interaction_id=uuid.UUID(iid)).agent_id == agent
    return iid


def steps_completed(run_id) -> list[tuple[str, str]]:
    return [(e.data["step"], e.data["answer"]) for e in events_of(run_id) if e.event_type == "frameworks.StepCompleted"]


def test_an_agent_follows_the_script_on_the_desk_and_keeps_a_promise(web, browser, topic, background):
    from playwright.sync_api import expect

    background.relay()
    background.projector("customers.directory")
    background.projector("customers.timeline")

    make_queue("billing")
    Script.objects.create(name="Billing contact", version=1, steps=STEPS, queues=["billing"])
    # Within it, a refund is done at once (the migrations' defaults may be gone after another test's flush).
    AuthorityLimit.objects.update_or_create(kind="refund", group=None,
                                            defaults={"per_action": Decimal("50"), "per_day": Decimal("200")})
    _ann, desk = ready_agent(browser, web, "ann")
    expect(desk.get_by_test_id("promises")).to_have_text("Nothing owed.")

    iid = arrive(web, "bill-1", "I was charged twice this month", "billing", "twice@example.com")
    desk.get_by_test_id("accept").click()

    # Accepted: the queue's script started; greeting is next and account changes are locked until identity.
    expect(desk.get_by_test_id("script-name")).to_have_text("Billing contact v1")
    expect(desk.get_by_test_id("script-none")).to_be_hidden()
    steps = desk.get_by_test_id("script-steps").locator("li")
    expect(steps).to_have_count(len(STEPS))
    assert [s.get_attribute("data-step") for s in steps.all()] == [s["key"] for s in STEPS]
    expect(desk.get_by_test_id("step-greeting")).to_have_attribute("data-state", "next")
    expect(desk.get_by_test_id("step-greeting")).to_contain_text("Thank you for contacting us")
    expect(desk.get_by_test_id("step-identity")).to_have_attribute("data-state", "due")
    expect(desk.get_by_test_id("script-gate")).to_have_text("account changes locked until: Verify identity")
    expect(desk.get_by_test_id("script-progress")).to_have_text(
        "0 of 4 required steps done; still required: Greet, Verify identity, Confirm, Close.")
    run = ScriptRun.objects.get(interaction_id=iid)
    assert (run.script.name, run.completed) == ("Billing contact", {})

    # A refund before identity is verified: refused by the protocol, the reason shown, nothing written.
    desk.get_by_test_id("action-kind").select_option("refund")
    desk.get_by_test_id("action-amount").fill("30")
    desk.get_by_test_id("action-reason").fill("Charged twice")
    desk.get_by_test_id("act").click()
    expect(desk.get_by_test_id("action-message")).to_have_text(
        "account changes need step 'identity' (Verify identity) of Billing contact v1 done first")
    expect(desk.get_by_test_id("action")).to_have_count(0)
    assert not Action.objects.exists()

    # Greeting, then identity (with what the customer said): recorded, and the lock is gone.
    desk.get_by_test_id("step-done-greeting").click()
    expect(desk.get_by_test_id("step-greeting")).to_have_attribute("data-state", "done")
    expect(desk.get_by_test_id("step-identity")).to_have_attribute("data-state", "next")
    expect(desk.get_by_test_id("script-gate")).to_have_count(1)
    desk.get_by_test_id("step-note-identity").fill("Date of birth and postcode match")
    desk.get_by_test_id("step-done-identity").click()
    expect(desk.get_by_test_id("step-identity")).to_have_attribute("data-state", "done")
    expect(desk.get_by_test_id("step-identity").get_by_test_id("step-answer")).to_have_text(
        "Customer said: Date of birth and postcode match")
    expect(desk.get_by_test_id("script-gate")).to_have_count(0)
    expect(desk.get_by_test_id("step-discovery")).to_have_attribute("data-state", "next")
    assert steps_completed(run.id) == [("greeting", ""), ("identity", "Date of birth and postcode match")]

    # The decision: "resolve" goes on to the resolution (nothing skipped); confirmation stays due after it.
    expect(desk.get_by_test_id("step-option-route-escalate")).to_have_text("No: escalate with the response time")
    desk.get_by_test_id("step-option-route-resolve").click()
    expect(desk.get_by_test_id("step-route")).to_have_attribute("data-state", "done")
    expect(desk.get_by_test_id("step-route").get_by_test_id("step-answer")).to_have_text("Chose: Yes: resolve it")
    expect(desk.get_by_test_id("step-resolution")).not_to_have_attribute("data-state", "skipped")
    expect(desk.get_by_test_id("step-discovery")).to_have_attribute("data-state", "next")  # not required, still due
    expect(desk.locator("[data-state=skipped]")).to_have_count(0)
    desk.get_by_test_id("step-done-resolution").click()
    expect(desk.get_by_test_id("step-resolution")).to_have_attribute("data-state", "done")
    expect(desk.get_by_test_id("step-confirmation")).to_have_attribute("data-state", "due")
    expect(desk.get_by_test_id("step-option-route-resolve")).to_have_count(0)  # a decision is taken once
    expect(desk.get_by_test_id("script-progress")).to_have_text(
        "2 of 4 required steps done; still required: Confirm, Close.")
    run.refresh_from_db()
    assert run.completed == {"greeting": "", "identity": "Date of birth and postcode match", "route": "resolve",
                             "resolution": ""}
    assert [step for step, _ in steps_completed(run.id)] == ["greeting", "identity", "route", "resolution"]

    # Now the refund is done, within the agent's limit.
    desk.get_by_test_id("action-amount").fill("30")
    desk.get_by_test_id("action-reason").fill("Charged twice")
    desk.get_by_test_id("act").click()
    expect(desk.get_by_test_id("action-status")).to_have_text("done")
    expect(desk.get_by_test_id("action-message")).to_be_hidden()
    action = Action.objects.get(interaction_id=iid)
    assert (action.kind, action.amount, action.status) == ("refund", Decimal("30.00"), Action.DONE)

    # A callback promised here shows in my promises at once.
    desk.get_by_test_id("callback-note").fill("Check the refund landed")
    desk.get_by_test_id("callback-promise").click()
    expect(desk.get_by_test_id("promise")).to_have_count(1)
    expect(desk.locator("[data-testid=promise][data-kind=callback]")).to_contain_text(
        "Callback: call back (promised) on chat")

    # A follow-up: without saying what was promised it is refused, the field named; then promised and listed.
    desk.get_by_test_id("followup-promise").click()
    expect(desk.get_by_test_id("followup-error-note")).to_have_text("This field may not be blank.")
    assert not FollowUp.objects.exists()
    desk.get_by_test_id("followup-note").fill("Email the corrected invoice")
    desk.get_by_test_id("followup-promise").click()
    expect(desk.get_by_test_id("followup-result")).to_contain_text("Follow-up promised, due")
    expect(desk.get_by_test_id("followup-error-note")).to_have_count(0)
    task = FollowUp.objects.get()
    assert (task.agent_id, task.interaction_id, task.note, task.status) == ("ann", uuid.UUID(iid),
                                                                           "Email the corrected invoice", "open")
    assert dt.timedelta(hours=23, minutes=58) < task.due_at - timezone.now() <= dt.timedelta(hours=24)
    item = desk.locator(f"[data-testid=promise][data-id='{task.id}']")
    expect(item).to_contain_text("Follow-up: Email the corrected invoice — due")
    expect(item).to_have_attribute("data-overdue", "false")
    expect(desk.get_by_test_id("promises-count")).to_have_text("(2)")  # the callback (in 1 h) first
    expect(desk.get_by_test_id("promise").first).to_have_attribute("data-kind", "callback")

    # Kept: marked done from the list, it leaves it.
    item.get_by_test_id("promise-done").click()
    expect(desk.get_by_test_id("promises-message")).to_have_text("Kept: Email the corrected invoice")
    expect(item).to_have_count(0)
    expect(desk.get_by_test_id("promises-count")).to_have_text("(1)")
    task.refresh_from_db()
    assert (task.status, task.closed_by) == ("done", "ann")
    assert [e.event_type for e in events_of(task.id)] == ["followups.FollowUpCreated", "followups.FollowUpDone"]


def test_a_script_switched_on_by_contact_reason_and_an_overdue_follow_up_shown_live(web, browser, topic, background):
    from playwright.sync_api import expect

    background.relay()
    background.projector("customers.directory")
    background.projector("customers.timeline")

    make_queue("support")  # no script for this queue
    Script.objects.create(name="Cancellation", version=1, steps=STEPS, dispositions=["cancellation"])
    _ann, desk = ready_agent(browser, web, "ann")

    iid = arrive(web, "cancel-1", "I want to cancel my plan", "support", "leaving@example.com")
    desk.get_by_test_id("accept").click()
    expect(desk.get_by_test_id("script-none")).to_have_text("This contact follows no script.")
    expect(desk.get_by_test_id("script-steps").locator("li")).to_have_count(0)
    expect(desk.get_by_test_id("context-name")).to_be_visible()
    expect(desk.get_by_test_id("context")).to_contain_text("Nothing promised to this customer.")

    # A contact reason no script is for: the API's answer on the field. Then the one that is.
    desk.get_by_test_id("script-disposition").fill("complaint")
    desk.get_by_test_id("script-switch").click()
    expect(desk.get_by_test_id("script-error-disposition")).to_have_text("no active script for that")
    assert not ScriptRun.objects.exists()
    desk.get_by_test_id("script-disposition").fill("cancellation")
    desk.get_by_test_id("script-switch").click()
    expect(desk.get_by_test_id("script-name")).to_have_text("Cancellation v1")
    expect(desk.get_by_test_id("script-none")).to_be_hidden()
    expect(desk.get_by_test_id("script-switch-message")).to_have_text(
        "Following Cancellation v1 for “cancellation”.")
    expect(desk.get_by_test_id("step-greeting")).to_have_attribute("data-state", "next")
    expect(desk.get_by_test_id("script-gate")).to_have_text("account changes locked until: Verify identity")
    run = ScriptRun.objects.get(interaction_id=iid)
    started = [e.data for e in events_of(run.id) if e.event_type == "frameworks.ScriptStarted"]
    assert [(s["script"], s["disposition"]) for s in started] == [("Cancellation", "cancellation")]

    # The escalate branch skips the resolution.
    desk.get_by_test_id("step-option-route-escalate").click()
    expect(desk.get_by_test_id("step-resolution")).to_have_attribute("data-state", "skipped")
    expect(desk.get_by_test_id("step-resolution")).to_contain_text("skipped: not on this branch")
    expect(desk.get_by_test_id("step-done-resolution")).to_have_count(0)

    # A follow-up promised for later today: listed, not overdue.
    desk.get_by_test_id("followup-note").fill("Send the cancellation confirmation")
    desk.get_by_test_id("followup-due").fill(desk.evaluate("() => localInput(new Date(Date.now() + 30 * 60000))"))
    desk.get_by_test_id("followup-promise").click()
    expect(desk.get_by_test_id("followup-result")).to_contain_text("Follow-up promised, due")
    task = FollowUp.objects.get()
    item = desk.locator(f"[data-testid=promise][data-id='{task.id}']")
    expect(item).to_have_attribute("data-overdue", "false")
    expect(item.get_by_test_id("promise-overdue")).to_have_count(0)

    # Time passes: its due time is behind us (the desk has no timer; only the sweep's push can tell it).
    FollowUp.objects.filter(id=task.id).update(due_at=timezone.now() - dt.timedelta(minutes=5))
    expect(item).to_have_attribute("data-overdue", "false")
    assert followups_overdue() == 1
    expect(item).to_have_attribute("data-overdue", "true")
    expect(item.get_by_test_id("promise-overdue")).to_have_text("overdue")
    expect(item).to_have_class("overdue")
    expect(desk.get_by_test_id("promises-count")).to_have_text("(1, 1 overdue)")
    expect(desk.get_by_test_id("notice")).to_contain_text("Follow-up overdue: Send the cancellation confirmation")
    task.refresh_from_db()
    assert task.overdue and task.status == "open"
    overdue = [e.data for e in events_of(task.id) if e.event_type == "followups.FollowUpOverdue"]
    assert len(overdue) == 1 and overdue[0]["overdue_seconds"] >= 300

    # The contact ends; the customer writes again. The offer says what they are waiting for, and so does the
    # context of the contact accepted.
    desk.get_by_test_id("end").click()
    desk.get_by_test_id("wrap-up").click()
    expect(desk.get_by_test_id("done")).to_have_text("Wrapped up.")
    expect(desk.get_by_test_id("script")).to_be_hidden()
    expect(desk.get_by_test_id("presence")).to_have_text("available")
    again = arrive(web, "cancel-2", "Where is my confirmation?", "support", "leaving@example.com")
    assert str(FollowUp.objects.get().customer_id) == chat_customer(again)
    waiting = desk.get_by_test_id("offer-promises-item")
    expect(waiting).to_have_count(1)
    expect(waiting).to_contain_text("Follow-up: Send the cancellation confirmation — due")
    expect(waiting).to_contain_text("(overdue)")
    desk.get_by_test_id("accept").click()
    expect(desk.get_by_test_id("context-promises-item")).to_contain_text(
        "Follow-up: Send the cancellation confirmation")
    expect(desk.get_by_test_id("script-none")).to_be_visible()  # a new contact: no script until switched on


def chat_customer(interaction_id: str) -> str:
    return str(Interaction.objects.get(id=interaction_id).customer_id)
