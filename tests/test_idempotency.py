"""Idempotency-Key on the API's POSTs (contactcenter/idempotency.py), against the real PostgreSQL.

A retry with the same key gets the first answer and runs nothing; a different request under the same key is a
422; two racing tries run the command once; a failed first try leaves the key free; keys expire after 24 hours;
each user's keys are their own; on_commit hooks fire once, after the commit.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.utils import timezone

from contactcenter import idempotency, tasks
from contactcenter.models import IdempotentRequest
from customers.models import Customer
from tests.conftest import client_for, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

CUSTOMERS = "/api/v1/customers/"


def register(api, key: str | None, *, name: str = "Ada", email: str = "ada@example.com"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return api.post(CUSTOMERS, {"display_name": name, "email": email}, format="json", **headers)


@pytest.fixture
def staff2(db):
    return get_user_model().objects.create_user(username="super2", password="pw-super2", is_staff=True)


def test_a_retried_post_runs_once_and_gets_the_identical_answer(staff_api, staff):
    key = str(uuid.uuid4())
    first = register(staff_api, key)
    assert first.status_code == 201, first.content
    assert "Idempotent-Replayed" not in first
    again = register(staff_api, key)
    assert again.status_code == 201
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert again["Content-Type"] == first["Content-Type"]
    assert Customer.objects.count() == 1
    row = IdempotentRequest.objects.get(user_id=str(staff.pk), key=key)
    assert (row.status, bytes(row.response_body)) == (201, first.content)
    # Without a key nothing is remembered: the same request is a new command (here refused: the email is taken).
    assert register(staff_api, None).status_code == 409


def test_a_retried_message_is_recorded_once(staff_api):
    from events import store

    started = staff_api.post("/api/v1/interactions/", {"channel": "chat", "identity": {"kind": "email",
                             "value": "bo@example.com"}}, format="json", HTTP_IDEMPOTENCY_KEY="start-1")
    assert started.status_code == 201, started.content
    again = staff_api.post("/api/v1/interactions/", {"channel": "chat", "identity": {"kind": "email",
                           "value": "bo@example.com"}}, format="json", HTTP_IDEMPOTENCY_KEY="start-1")
    assert again.json() == started.json() and again["Idempotent-Replayed"] == "true"
    interaction_id = started.json()["interaction"]["id"]
    url = f"/api/v1/interactions/{interaction_id}/messages/"
    answers = [staff_api.post(url, {"direction": "inbound", "body": "where is my parcel?"}, format="json",
                              HTTP_IDEMPOTENCY_KEY="msg-1") for _ in range(3)]
    assert {a.status_code for a in answers} == {200} and len({a.content for a in answers}) == 1
    messages = [e for e in store.read_stream(uuid.UUID(interaction_id)) if e.event_type == "interactions.MessageRecorded"]
    assert len(messages) == 1


def test_the_same_key_for_a_different_request_is_422(staff_api):
    assert register(staff_api, "k-1").status_code == 201
    other_body = register(staff_api, "k-1", name="Grace", email="grace@example.com")
    assert other_body.status_code == 422
    assert other_body.json() == {"detail": other_body.json()["detail"], "code": "idempotency_key_reused",
                                 "field": "Idempotency-Key"}
    other_path = staff_api.post("/api/v1/callbacks/", {}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert other_path.status_code == 422 and other_path.json()["code"] == "idempotency_key_reused"
    assert Customer.objects.count() == 1


@pytest.mark.parametrize("key", ["", "   ", "x" * 256, "tab\there", "caf\u00e9"])
def test_a_malformed_key_is_400_naming_the_header(staff_api, key):
    response = register(staff_api, key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key" and response.json()["field"] == "Idempotency-Key"
    assert Customer.objects.count() == 0 and IdempotentRequest.objects.count() == 0


def test_a_key_of_255_printable_characters_is_fine(staff_api):
    assert register(staff_api, "k" * 254 + "~").status_code == 201


def test_another_user_s_same_key_is_another_key(staff_api, staff2):
    assert register(staff_api, "shared").status_code == 201
    theirs = register(client_for(staff2), "shared", name="Grace", email="grace@example.com")
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs
    assert Customer.objects.count() == 2
    assert IdempotentRequest.objects.filter(key="shared").count() == 2


def test_anonymous_and_signed_webhook_posts_are_left_to_their_views(staff):
    from rest_framework.test import APIClient

    anonymous = APIClient().post(CUSTOMERS, {"display_name": "A"}, format="json", HTTP_IDEMPOTENCY_KEY="")
    assert anonymous.status_code == 401  # not the 400 of a malformed key: who you are comes first
    assert IdempotentRequest.objects.count() == 0


def _waiting_on_locks(n: int) -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")
        return cur.fetchone()[0] >= n


def test_two_racing_tries_run_the_command_once(staff):
    """The first try is held inside its command (a table lock from outside), so the second surely arrives while
    the first is still running; it must wait for the first and then answer with the first's answer."""
    params = connection.settings_dict
    blocker = psycopg.connect(dbname=params["NAME"], user=params["USER"] or None,
                              password=params["PASSWORD"] or None, host=params["HOST"] or None,
                              port=params["PORT"] or None)
    answers: dict[str, object] = {}
    clients = {"first": client_for(staff), "second": client_for(staff)}

    def attempt(name: str) -> None:
        try:
            answers[name] = register(clients[name], "race")
        finally:
            connections.close_all()

    try:
        blocker.execute("LOCK TABLE customers_customer IN SHARE ROW EXCLUSIVE MODE")  # blocks inserts, not reads
        first = threading.Thread(target=attempt, args=("first",))
        first.start()
        wait_for(lambda: _waiting_on_locks(1), timeout=20, what="the first try to block inside its command")
        second = threading.Thread(target=attempt, args=("second",))
        second.start()
        wait_for(lambda: _waiting_on_locks(2), timeout=20, what="the second try to wait on the first's key")
        time.sleep(0.2)
        assert "first" not in answers and "second" not in answers
    finally:
        blocker.rollback()  # releases the lock: the first try finishes, then the second
        blocker.close()
    first.join(30)
    second.join(30)
    assert answers["first"].status_code == answers["second"].status_code == 201
    assert answers["first"].content == answers["second"].content
    assert answers["second"]["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in answers["first"]
    assert Customer.objects.count() == 1


def test_a_first_try_that_fails_with_500_leaves_nothing_and_the_retry_runs(staff_api):
    # A trigger makes the command fail inside the database, as a crash mid-command would.
    with connection.cursor() as cur:
        cur.execute("CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    "BEGIN RAISE EXCEPTION 'refused for the test'; END $$")
        cur.execute("CREATE TRIGGER test_refuse BEFORE INSERT ON customers_customer "
                    "FOR EACH ROW EXECUTE FUNCTION test_refuse()")
    staff_api.raise_request_exception = False
    try:
        failed = register(staff_api, "retry-me")
        assert failed.status_code == 500
    finally:
        with connection.cursor() as cur:
            cur.execute("DROP TRIGGER test_refuse ON customers_customer")
            cur.execute("DROP FUNCTION test_refuse()")
    assert IdempotentRequest.objects.count() == 0  # rolled back with the command
    retried = register(staff_api, "retry-me")
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried
    assert Customer.objects.count() == 1


def test_a_first_try_refused_with_a_4xx_leaves_the_key_free(staff_api, settings):
    rates = dict(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], user="1/hour")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    staff_api.get(CUSTOMERS)  # uses up this hour's one request
    refused = register(staff_api, "after-429")
    assert refused.status_code == 429 and IdempotentRequest.objects.count() == 0
    rates["user"] = "1000000/min"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    retried = register(staff_api, "after-429")
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried
    assert Customer.objects.count() == 1


def test_keys_expire_after_24_hours_and_the_beat_task_purges_them(staff_api, staff):
    assert register(staff_api, "old").status_code == 201
    assert register(staff_api, "recent", name="Grace", email="grace@example.com").status_code == 201
    IdempotentRequest.objects.filter(key="old").update(created_at=timezone.now() - dt.timedelta(hours=24, seconds=5))
    assert tasks.idempotency_purge() == 1
    assert tasks.idempotency_purge() == 0  # run twice: nothing more to do
    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["recent"]
    # The key is free again: a new command under it runs (and may be a different request).
    fresh = register(staff_api, "old", name="Linus", email="linus@example.com")
    assert fresh.status_code == 201 and "Idempotent-Replayed" not in fresh
    assert Customer.objects.count() == 3


def test_an_expired_key_not_purged_yet_is_free_too(staff_api):
    assert register(staff_api, "stale").status_code == 201
    IdempotentRequest.objects.update(created_at=timezone.now() - dt.timedelta(hours=25))
    again = register(staff_api, "stale", name="Grace", email="grace@example.com")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert IdempotentRequest.objects.get(key="stale").created_at > timezone.now() - dt.timedelta(minutes=1)


def test_on_commit_hooks_fire_once_after_the_commit_and_never_on_a_replay(monkeypatch):
    from routing import services as routing_services
    from tests.routing.factories import make_agent

    ann = make_agent("ann", presence="offline")
    fired = []

    def spy():
        # After the commit: no transaction is open, and the stored answer is already there.
        fired.append((connection.in_atomic_block, IdempotentRequest.objects.filter(key="p-1", status=200).exists()))

    monkeypatch.setattr(routing_services, "_send_dispatch", spy)
    api = client_for(ann.user)
    answers = [api.post("/api/v1/agents/me/presence/", {"presence": "available"}, format="json",
                        HTTP_IDEMPOTENCY_KEY="p-1") for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200] and answers[1]["Idempotent-Replayed"] == "true"
    assert fired == [(False, True)]


def test_the_schema_documents_the_header_on_every_authenticated_post(staff_api):
    schema = staff_api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    posts = {path: ops["post"] for path, ops in schema["paths"].items() if "post" in ops}
    with_key = {path for path, op in posts.items()
                if any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in op.get("parameters", []))}
    assert "/api/v1/customers/" in with_key and "/api/v1/interactions/{id}/messages/" in with_key
    # The signed webhooks have no user, hence no per-user key: they deduplicate by the provider's message id.
    # A WebSocket ticket is no command: a retry gets a new ticket (a stored answer would keep it in clear text).
    assert set(posts) - with_key == {"/api/v1/webhooks/{channel}/{provider}/", "/api/v1/surveys/webhook/{provider}/",
                                     "/api/v1/ws-tickets/"}
    assert posts["/api/v1/customers/"]["responses"]["422"]
    assert idempotency.REPLAYED_HEADER in posts["/api/v1/customers/"]["responses"]["201"]["headers"]


def test_a_websocket_ticket_is_never_stored_nor_replayed(staff_api):
    """Only a ticket's hash is kept (contactcenter/tickets.py); a retry with the same key gets a new ticket."""
    from contactcenter.models import IdempotentRequest

    first = staff_api.post("/api/v1/ws-tickets/", HTTP_IDEMPOTENCY_KEY="ticket-1")
    again = staff_api.post("/api/v1/ws-tickets/", HTTP_IDEMPOTENCY_KEY="ticket-1")
    assert first.status_code == again.status_code == 201
    assert first.json()["ticket"] != again.json()["ticket"]
    assert not IdempotentRequest.objects.filter(key="ticket-1").exists()
