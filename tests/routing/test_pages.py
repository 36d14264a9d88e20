"""The agent desk and the wallboard, end to end in headless Chromium against a real daphne.

Two agents with different skills sign in to the desk and go available; a
chat and a call arrive for different queues; each is offered to the right
agent, who accepts, sees the customer, replies (chat), ends and wraps up;
the wallboard, open beside them, shows the queues and the agents live.
"""

import os
import uuid

import pytest
from django.contrib.auth import get_user_model

from customers.models import CustomerProfile
from events import store
from routing import services
from tests.conftest import wait_for
from tests.routing.factories import make_agent, make_queue, make_waiting

pytestmark = pytest.mark.django_db(transaction=True)
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test also uses the ORM here.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    assert os.path.exists(CHROMIUM), "browser tests need Debian's chromium: `make test` installs it as root"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"])
        yield b
        b.close()


def sign_in(browser, base, username, path):
    page = browser.new_context().new_page()
    page.set_default_timeout(10_000)
    # Shown with the failure report if the test fails: the page's own errors.
    page.on("console", lambda m: print(f"console [{username}]", m.text))
    page.on("pageerror", lambda e: print(f"page error [{username}]", e))
    page.goto(f"{base}/accounts/login/?next={path}")
    page.get_by_test_id("username").fill(username)
    page.get_by_test_id("password").fill(username)
    page.get_by_test_id("sign-in").click()
    page.wait_for_url(f"{base}{path}")
    page.get_by_test_id("socket").filter(has_text="live").wait_for()
    return page


def test_two_agents_take_a_chat_and_a_call_on_the_desk_while_the_wallboard_follows(web, browser, topic, background):
    from playwright.sync_api import expect

    # The real path behind the pages: outbox -> Kafka -> projectors -> pushes.
    background.relay()
    background.projector("customers.directory")
    background.projector("customers.timeline")

    make_queue("billing", skills={"billing": 2})
    make_queue("support", skills={"support": 2})
    for name, skill in (("ann", "billing"), ("bob", "support")):
        agent = make_agent(name, skills={skill: 4}, presence="offline")
        agent.user.set_password(name)
        agent.user.save()
    boss = get_user_model().objects.create_user(username="boss", password="boss", is_staff=True)
    assert boss

    board = sign_in(browser, web, "boss", "/wallboard/")
    ann = sign_in(browser, web, "ann", "/desk/")
    bob = sign_in(browser, web, "bob", "/desk/")
    for desk in (ann, bob):
        desk.get_by_test_id("set-available").click()
        expect(desk.get_by_test_id("presence")).to_have_text("available")
    expect(board.get_by_test_id("presence-ann")).to_have_text("available")

    chat = make_waiting("billing", channel="chat", email="ada@example.com")
    call = make_waiting("support", channel="voice", email="grace@example.com")
    wait_for(lambda: CustomerProfile.objects.filter(display_name="grace@example.com").exists(), what="the directory")
    expect(board.get_by_test_id("waiting-billing")).to_have_text("1")
    # What the routing worker does on the queued triggers (run here, in the test's process):
    assert services.work_route(interaction_id=uuid.UUID(chat)).agent_id == "ann"
    assert services.work_route(interaction_id=uuid.UUID(call)).agent_id == "bob"
    expect(board.get_by_test_id("offered-billing")).to_have_text("1")

    expect(ann.get_by_test_id("offer-channel")).to_have_text("chat · billing")
    expect(ann.get_by_test_id("offer-customer")).to_have_text("ada@example.com")
    expect(bob.get_by_test_id("offer-channel")).to_have_text("voice · support")
    ann.get_by_test_id("accept").click()
    expect(ann.get_by_test_id("context-name")).to_have_text("ada@example.com")
    ann.get_by_test_id("reply").fill("Hello Ada, I am looking at your bill 👋")
    ann.get_by_test_id("send").click()
    expect(ann.get_by_test_id("timeline")).to_contain_text("I am looking at your bill 👋", timeout=15_000)
    expect(board.get_by_test_id("in-hand-billing")).to_have_text("1")
    ann.get_by_test_id("end").click()
    ann.get_by_test_id("disposition").fill("billing.explained")
    ann.get_by_test_id("wrap-up").click()
    expect(ann.get_by_test_id("done")).to_have_text("Wrapped up.")

    bob.get_by_test_id("accept").click()
    expect(bob.get_by_test_id("reply")).to_be_hidden()  # a call: no text reply
    bob.get_by_test_id("end").click()
    expect(bob.get_by_test_id("presence")).to_have_text("after_call_work (after call)")
    expect(board.get_by_test_id("presence-bob")).to_contain_text("after_call_work")
    bob.get_by_test_id("wrap-up").click()
    expect(bob.get_by_test_id("presence")).to_have_text("available")

    expect(board.get_by_test_id("answered-billing")).to_have_text("1")
    expect(board.get_by_test_id("answered-support")).to_have_text("1")
    expect(board.get_by_test_id("in-hand-billing")).to_have_text("0")
    dispositions = [e.data["disposition"] for e in store.read_all(limit=10_000)
                    if e.event_type == "interactions.InteractionWrappedUp"]
    assert sorted(dispositions) == ["billing.explained", "resolved"]
