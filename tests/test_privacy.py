"""Personal data minimised, erasable and exportable, proven end to end (docs/PRIVACY.md).

1. Card numbers and security codes typed, said or pasted into every free-text input (channel webhooks, the
   agent's API, notes, reports, scripts, surveys) leave zero hits of the full number or of the code in context:
   in every text, JSON and bytea column of every table, on every record of the Kafka topic, in every event
   decrypted, and in the logs written meanwhile (root logger at DEBUG). Only the masked form with the last
   four is kept.
2. Erasing a customer leaves none of their plaintext anywhere: database, every Kafka record (those published
   before the erasure too: encrypted from the start), logs.
3. The subject-access export: one JSON document, for admins and holders of
   `contactcenter.export_personal_data` only (404 for anyone else), audited, empty and marked once erased.

The searches read the schema from PostgreSQL itself (information_schema), so a table added later is searched
without anyone remembering to list it here.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import re
import uuid
from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from contactcenter.models import AuditEntry
from customers.models import Customer, CustomerIdentity, CustomerProfile
from events import store
from events.models import Event, OutboxEntry, ProjectionCheckpoint
from events.projection import all_projections
from frameworks.models import Script
from incidents.models import IncidentReport
from interactions.models import Conversation, Interaction
from quality.models import Survey
from routing import services as routing_services
from tests.conftest import client_for, read_topic, wait_for
from tests.interactions.test_webhooks import (
    call,
    msg_id,
    ok,
    secrets,  # noqa: F401  (the signing secrets fixture)
)
from tests.quality.test_scoring import FORM
from tests.routing.factories import make_agent, make_queue

pytestmark = pytest.mark.django_db(transaction=True)

STEPS = importlib.import_module("frameworks.migrations.0002_standard_script").STEPS
MAIL = {"provider": "mailco", "secret": "s3cret-mail"}
GOOD_ANSWERS = {"greeted": "yes", "identity": "yes", "empathy": 5, "solved": "yes"}


# --- searching everywhere -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Needle:
    """What must not be found. `pattern` is a regular expression valid in Python and in PostgreSQL; with
    `compact`, it is matched against the text with its spaces and dashes taken out (a card number is found
    however it was written)."""

    label: str
    pattern: str
    compact: bool = False

    def found_in(self, text: str) -> bool:
        if self.compact:
            text = re.sub(r"[\s-]", "", text)
        return re.search(self.pattern, text, re.IGNORECASE) is not None


@dataclass
class Findings:
    """Where the needles were looked for, and what was found (`hits`: (where, needle, excerpt))."""

    tables: int = 0
    columns: int = 0
    rows: int = 0
    values: int = 0
    records: int = 0
    events: int = 0
    log_lines: int = 0
    hits: list = field(default_factory=list)


TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "bytea", "ARRAY", "USER-DEFINED")


def search_database(needles: list[Needle], findings: Findings) -> None:
    """Every text-like column of every table of the public schema (cast to text; bytea as its raw bytes)."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c "
            "JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' AND c.data_type = ANY(%s) "
            "ORDER BY c.table_name, c.ordinal_position",
            [list(TEXT_TYPES)],
        )
        columns = cur.fetchall()
        tables = sorted({t for t, _, _ in columns})
        findings.tables += len(tables)
        findings.columns += len(columns)
        for table in tables:
            cur.execute(f'SELECT count(*) FROM "{table}"')
            findings.rows += cur.fetchone()[0]
        for table, column, data_type in columns:
            # bytea: its bytes as text (escape form: printable ASCII as itself), so a number stored as raw
            # bytes is found too; everything else: its text form (json and arrays included).
            text = f"encode(\"{column}\", 'escape')" if data_type == "bytea" else f'"{column}"::text'
            cur.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}" IS NOT NULL')
            findings.values += cur.fetchone()[0]
            for needle in needles:
                target = f"regexp_replace({text}, '[[:space:]-]', '', 'g')" if needle.compact else text
                cur.execute(f'SELECT {text} FROM "{table}" WHERE {target} ~* %s LIMIT 3', [needle.pattern])
                for (value,) in cur.fetchall():
                    findings.hits.append((f"db {table}.{column}", needle.label, _excerpt(value, needle)))


def search_topic(topic: str, needles: list[Needle], findings: Findings) -> list:
    """Every record of the topic, from the beginning, keys, values and headers as bytes decoded."""
    records = read_topic(topic, settings.KAFKA_BOOTSTRAP_SERVERS, expected=Event.objects.count())
    findings.records += len(records)
    for r in records:
        text = " ".join([(r.key or b"").decode("utf-8", "replace"), (r.value or b"").decode("utf-8", "replace")]
                        + [f"{k}={v.decode('utf-8', 'replace')}" for k, v in (r.headers or [])])
        for needle in needles:
            if needle.found_in(text):
                findings.hits.append((f"kafka {r.topic}/{r.partition}@{r.offset}", needle.label,
                                      _excerpt(text, needle)))
    return records


def search_events_decrypted(needles: list[Needle], findings: Findings) -> None:
    """Every stored event as the API and the projections read it: decrypted with the customers' keys."""
    for batch in store.iter_all():
        for env in batch:
            findings.events += 1
            text = json.dumps(env.as_dict(), ensure_ascii=False)
            for needle in needles:
                if needle.found_in(text):
                    findings.hits.append((f"event #{env.position} {env.event_type}", needle.label,
                                          _excerpt(text, needle)))


def search_logs(lines: list[str], needles: list[Needle], findings: Findings) -> None:
    findings.log_lines += len(lines)
    for line in lines:
        for needle in needles:
            if needle.found_in(line):
                findings.hits.append(("log", needle.label, _excerpt(line, needle)))


def _excerpt(value, needle: Needle) -> str:
    text = value if isinstance(value, str) else str(value)
    m = re.search(needle.pattern, re.sub(r"[\s-]", "", text) if needle.compact else text, re.IGNORECASE)
    return text[:200] if m is None or needle.compact else text[max(0, m.start() - 60):m.end() + 60]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a record that cannot be formatted is still a line we looked at
            self.lines.append(repr(record.msg))


@pytest.fixture
def logs():
    """Everything logged during the test, at DEBUG: a handler on the root logger, and every logger that sets
    its own level (Kafka's: WARNING in the settings) lowered to DEBUG meanwhile."""
    capture = _Capture()
    root = logging.getLogger()
    changed = {name: lg.level for name, lg in logging.root.manager.loggerDict.items()
               if isinstance(lg, logging.Logger) and lg.level not in (logging.NOTSET, logging.DEBUG)}
    saved = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    for name in changed:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield capture.lines
    root.removeHandler(capture)
    root.setLevel(saved)
    for name, level in changed.items():
        logging.getLogger(name).setLevel(level)


def run_pipeline(background) -> None:
    """The relay and every projection, in threads, until the outbox is empty and each projection has read every
    record the relay published."""
    if not background.threads:
        background.relay()
        for projection in all_projections():
            background.projector(projection.name)
    catch_up()


def catch_up() -> None:
    wait_for(lambda: not OutboxEntry.objects.exists(), what="the relay to empty the outbox")
    published = Event.objects.count()
    names = [p.name for p in all_projections()]

    def caught_up():
        read = dict((n, 0) for n in names)
        for name, offset in ProjectionCheckpoint.objects.values_list("projection", "next_offset"):
            if name in read:
                read[name] += offset
        return all(n >= published for n in read.values())

    wait_for(caught_up, what="every projection to read the whole topic")


def assert_nothing_found(findings: Findings) -> None:
    assert not findings.hits, "\n".join(f"{where}: {label}: {excerpt!r}" for where, label, excerpt in findings.hits)


def test_the_search_finds_what_it_looks_for():
    """The search itself: the expressions find each form in PostgreSQL and in Python, so zero hits means none."""
    for needle in CARD_NEEDLES:
        for sample in SAMPLES[needle.label]:
            assert needle.found_in(sample), (needle.label, sample)
            with connection.cursor() as cur:
                expr = "regexp_replace(%s, '[[:space:]-]', '', 'g')" if needle.compact else "%s::text"
                cur.execute(f"SELECT {expr} ~* %s", [sample, needle.pattern])
                assert cur.fetchone()[0], (needle.label, sample)
    masked = "paid with [card ****1111], cvv [cvv]; security code: [cvv]"
    assert not any(n.found_in(masked) for n in CARD_NEEDLES)


# --- 1. card numbers and security codes: zero hits -----------------------------------------------------------

PANS = ("4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005", "4111111111111111",
        "5555 5555 5555 4444", "3782-822463-10005")
CODES = ("cvv 123", "security code: 4567", "CVC2 is 987", "Security Code 4567", "cvv: 123")
CARD_NEEDLES = [
    Needle("card number", r"4111111111111111|5555555555554444|378282246310005", compact=True),
    Needle("security code", r"(cvv2?|cvc2?|csc|security\s*code)\W{0,6}((is|was|number|no)\W{1,4})?(123|4567|987)"),
    Needle("code after the card", r"12/27\W{1,4}321"),
]
SAMPLES = {
    "card number": ["4111 1111 1111 1111", "x5555-5555-5555-4444y", '{"a": "378282246310005"}'],
    "security code": ["cvv 123", "Security code: 4567", "my CVC2 is 987"],
    "code after the card": ["exp 12/27 321"],
}


class CardTexts:
    """Free texts, each with a card number written one way and a security code said another."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, what: str) -> str:
        pan, code = PANS[self.n % len(PANS)], CODES[self.n % len(CODES)]
        self.n += 1
        if self.n % 4 == 0:
            return f"{what}: card {pan} exp 12/27 321 please"
        return f"{what}: my card is {pan} and the {code}, thanks"


def test_card_numbers_and_security_codes_leave_zero_hits(settings, topic, background, logs):
    settings.SURVEY_KIND = "both"
    text = CardTexts()
    make_queue("support")
    make_queue("specialist")
    Script.objects.create(name="Billing", steps=STEPS, queues=["support"], dispositions=["general"])
    ann = make_agent("ann", capacity={"chat": 3, "voice": 1, "sms": 3, "email": 3, "social": 3})
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    api, boss_api = client_for(ann.user), client_for(boss)
    phone = {"kind": "phone", "value": "+44 20 7946 0958"}

    def post(client, url, body, status=(200, 201)):
        response = client.post(url, body, format="json")
        assert response.status_code in status, (url, response.status_code, response.content)
        return response.json()

    def accept(interaction_id):
        routing_services.dispatch()
        post(api, f"/api/v1/interactions/{interaction_id}/accept/", {})

    # A chat: the customer's and the agent's messages, a warning, the script, an action and its approval, an
    # incident report and its amendment, a follow-up, a callback, and an escalation (a transfer with a note).
    chat = ok("chat", {"provider_message_id": msg_id(), "event": "start", "conversation_id": "c-1", "from": phone,
                       "queue": "support", "body": text("chat opening")})["interaction"]
    customer_id, chat_id = chat["customer_id"], chat["id"]
    accept(chat_id)
    ok("chat", {"provider_message_id": msg_id(), "conversation_id": "c-1", "body": text("chat message")})
    post(api, f"/api/v1/interactions/{chat_id}/messages/", {"direction": "outbound", "body": text("agent reply")})
    post(api, f"/api/v1/interactions/{chat_id}/warn/", {"reason": "abuse", "text": text("warning")})
    steps = f"/api/v1/interactions/{chat_id}/script/steps/"
    post(api, steps, {"step": "greeting"})
    post(api, steps, {"step": "identity", "answer": text("identity check")})
    post(api, steps, {"step": "discovery", "answer": text("discovery")})
    action = post(api, f"/api/v1/interactions/{chat_id}/actions/",
                  {"kind": "refund", "amount": "120.00", "reason": text("refund reason")})
    assert action["status"] == "pending"
    post(boss_api, f"/api/v1/approvals/{action['id']}/approve/", {"note": text("approval note")})
    report = post(api, "/api/v1/incidents/", {
        "interaction_id": chat_id, "kind": "abuse", "description": text("incident narrative"),
        "agent_responses": text("agent responses"), "deescalation_steps": text("de-escalation"),
        "follow_up_actions": text("follow-up actions"), "action_taken": "warned", "supervisor": "boss"})
    post(boss_api, f"/api/v1/incidents/{report['id']}/amend/",
         {"field": "description", "value": text("amended"), "reason": text("amendment reason")})
    due = (timezone.now() + dt.timedelta(days=1)).isoformat()
    task = post(api, "/api/v1/followups/", {"interaction_id": chat_id, "due_at": due, "note": text("follow-up")})
    post(api, f"/api/v1/followups/{task['id']}/done/", {"text": text("follow-up outcome")})
    callback = post(api, "/api/v1/callbacks/", {"customer_id": customer_id, "reason": "promised", "due_at": due,
                                                "note": text("callback note")})
    post(api, f"/api/v1/callbacks/{callback['id']}/cancel/", {"reason": text("callback cancelled")})
    post(api, f"/api/v1/interactions/{chat_id}/escalate/", {"target": "queue", "queue": "specialist",
                                                             "reason": text("escalation"),
                                                             "respond_within_minutes": 30})

    # The customer's details and profile notes.
    version = Customer.objects.get(id=customer_id).version
    response = boss_api.patch(f"/api/v1/customers/{customer_id}/", {
        "expected_version": version, "display_name": text("name"), "notes": text("profile notes")}, format="json")
    assert response.status_code == 200, response.content

    # SMS: in and out, wrapped up with notes, the survey answered with a comment, then reopened.
    sms = ok("sms", {"provider_message_id": msg_id(), "from": phone, "body": text("sms"),
                     "queue": "support"})["interaction"]
    accept(sms["id"])
    post(api, f"/api/v1/interactions/{sms['id']}/messages/", {"direction": "outbound", "body": text("sms reply")})
    post(api, f"/api/v1/interactions/{sms['id']}/end/", {"reason": "resolved"})
    post(api, f"/api/v1/interactions/{sms['id']}/wrap-up/", {"disposition": "billing", "notes": text("wrap-up")})
    survey = Survey.objects.get(interaction_id=sms["id"])
    post(boss_api, f"/api/v1/surveys/{survey.id}/answer/", {"csat": 2, "nps": 3, "comment": text("survey")})
    # The quality review of that contact: the agent disputes with a reason, the reviewer resolves with a note.
    card = post(boss_api, "/api/v1/scorecards/", {"name": "chat", "form": FORM})["id"]
    evaluation = post(boss_api, "/api/v1/evaluations/", {"scorecard": card, "interaction_id": sms["id"],
                                                         "answers": GOOD_ANSWERS})
    post(api, f"/api/v1/evaluations/{evaluation['id']}/dispute/", {"reason": text("dispute")})
    post(boss_api, f"/api/v1/evaluations/{evaluation['id']}/resolve/", {"outcome": "upheld",
                                                                        "note": text("resolution")})
    post(boss_api, f"/api/v1/interactions/{sms['id']}/reopen/", {"reason": text("reopen")})

    # Email (subject and body), social, an interaction opened by an agent with a subject, and a transfer.
    mail = ok("email", {"provider_message_id": msg_id(), "message_id": "<card-1@mail.example>",
                        "subject": text("email subject"), "from": {"kind": "email", "value": "ada@example.com"},
                        "to": ["support@center.example"], "body": text("email body"), "queue": "support"},
              **MAIL)["interaction"]
    ok("social", {"provider_message_id": msg_id(), "kind": "dm", "body": text("social dm"),
                  "from": {"kind": "social", "value": "ada_l", "provider": "x"}})
    opened = post(api, "/api/v1/interactions/", {"channel": "email", "customer_id": customer_id,
                                                 "subject": text("new subject"), "queue": "support"})
    assert opened["interaction"]["id"]
    accept(mail["id"])
    post(api, f"/api/v1/interactions/{mail['id']}/transfer/", {"to_queue": "specialist", "note": text("transfer")})

    # A call: the transcript of both speakers, wrapped up with notes.
    ok("voice", call("ringing", "v-1", queue="support", **{"from": phone}))
    ok("voice", call("answered", "v-1", agent_id="ann"))
    ok("voice", call("transcript", "v-1", speaker="customer", body=text("transcript customer"),
                     offset_seconds=3.5))
    ok("voice", call("transcript", "v-1", speaker="agent", body=text("transcript agent"), offset_seconds=9))
    voice = ok("voice", call("ended", "v-1", reason="resolved", duration_seconds=60))["interaction"]
    post(api, f"/api/v1/interactions/{voice['id']}/wrap-up/", {"disposition": text("disposition")[:100],
                                                               "notes": text("call wrap-up")})
    assert text.n >= 30  # every input above carried a card number and a code

    run_pipeline(background)

    findings = Findings()
    search_database(CARD_NEEDLES, findings)
    search_topic(topic, CARD_NEEDLES, findings)
    search_events_decrypted(CARD_NEEDLES, findings)
    search_logs(logs, CARD_NEEDLES, findings)
    print(f"\nprivacy proof 1 (cards): {findings.tables} tables, {findings.columns} columns, {findings.rows} rows, "
          f"{findings.values} values, {findings.records} Kafka records, {findings.events} events decrypted, "
          f"{findings.log_lines} log lines searched; hits: {len(findings.hits)}")
    assert_nothing_found(findings)
    assert findings.records == findings.events == Event.objects.count()  # the whole topic was read
    assert findings.log_lines > 0

    # The useful part stays: the last four, where the text is kept (read back decrypted).
    stored = json.dumps([e.data for e in store.read_all(limit=100_000)])
    for last_four in ("****1111", "****4444", "****0005"):
        assert last_four in stored
    assert "[cvv]" in stored
    assert "[card ****" in IncidentReport.objects.get(id=report["id"]).description
    assert "[card ****" in CustomerProfile.objects.get(customer_id=customer_id).notes


# --- 2. erasure leaves zero plaintext ------------------------------------------------------------------------

PERSON = {"name": "Zelda Quintavalle", "email": "zelda.quintavalle@example.org", "phone": "+44 20 7946 0321",
          "work_email": "zq.office@quintavalle-works.example", "handle": "zeldaq_social"}
# What they said and what was written about them: each text carries a word found nowhere else.
MARKERS = ("lapis", "quokka", "ocelot", "narwhal", "pangolin", "sassafras", "marzipan", "tamarind", "halibut",
           "juniper", "kumquat", "yarrow", "wombat", "zeppelin")
PERSON_NEEDLES = [
    Needle("name", r"zelda|quintavalle"),
    Needle("email", r"zelda\.quintavalle@example\.org|zq\.office"),
    Needle("phone", r"2079460321", compact=True),
    Needle("social handle", r"zeldaq"),
    Needle("their words", "|".join(MARKERS)),
    Needle("date of birth", r"1984-02-29"),
]


def test_erasure_leaves_zero_plaintext_in_the_database_on_kafka_and_in_the_logs(settings, topic, background, logs):
    settings.SURVEY_KIND = "csat"
    make_queue("support")
    make_queue("specialist")
    Script.objects.create(name="Billing", steps=STEPS, queues=["support"], dispositions=["general"])
    ann = make_agent("ann", capacity={"chat": 3, "voice": 1, "sms": 3, "email": 3, "social": 3})
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    api, boss_api = client_for(ann.user), client_for(boss)
    phone = {"kind": "phone", "value": PERSON["phone"]}
    words = iter(MARKERS)
    run_pipeline(background)  # running from the start: what Kafka gets before the erasure is searched too

    def said(what: str) -> str:
        return f"{what} ({next(words)})"

    def post(client, url, body, status=(200, 201), **headers):
        response = client.post(url, body, format="json", **headers)
        assert response.status_code in status, (url, response.status_code, response.content)
        return response.json()

    def accept(interaction_id):
        routing_services.dispatch()
        post(api, f"/api/v1/interactions/{interaction_id}/accept/", {})

    # Registered with a name, an email and a phone (two identities); a second email and a note later.
    customer_id = post(boss_api, "/api/v1/customers/", {"display_name": PERSON["name"], "email": PERSON["email"],
                                                        "phone": PERSON["phone"], "preferred_channel": "sms"})["id"]
    response = boss_api.patch(f"/api/v1/customers/{customer_id}/", {
        "expected_version": Customer.objects.get(id=customer_id).version, "email": PERSON["work_email"],
        "notes": said("Zelda prefers mornings")}, format="json")
    assert response.status_code == 200, response.content
    assert CustomerIdentity.objects.filter(customer_id=customer_id).count() == 3

    # A chat from their phone, with everything an agent writes about them on it.
    chat = ok("chat", {"provider_message_id": msg_id(), "event": "start", "conversation_id": "z-chat",
                       "from": phone, "queue": "support", "body": said("Hi, Zelda here")})["interaction"]
    assert chat["customer_id"] == customer_id
    chat_id = chat["id"]
    accept(chat_id)
    post(api, f"/api/v1/interactions/{chat_id}/messages/", {"direction": "outbound", "body": "Hello Zelda"})
    post(api, f"/api/v1/interactions/{chat_id}/warn/", {"reason": "abuse", "text": "Zelda, please keep it civil"})
    steps = f"/api/v1/interactions/{chat_id}/script/steps/"
    post(api, steps, {"step": "greeting"})
    post(api, steps, {"step": "identity", "answer": "DOB 1984-02-29, Zelda Quintavalle"})
    post(api, steps, {"step": "route", "answer": "escalate"})
    action = post(api, f"/api/v1/interactions/{chat_id}/actions/",
                  {"kind": "refund", "amount": "80.00", "reason": said("refund to Zelda Quintavalle")})
    post(boss_api, f"/api/v1/approvals/{action['id']}/approve/", {"note": "ok for Zelda"})
    catch_up()  # the report takes the contact details from the directory
    report = post(api, "/api/v1/incidents/", {
        "interaction_id": chat_id, "kind": "abuse", "description": said("Zelda Quintavalle shouted"),
        "agent_responses": "Told Zelda we keep it civil", "deescalation_steps": "Offered Zelda a supervisor",
        "action_taken": "warned", "supervisor": "boss"}, HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    assert "Zelda Quintavalle" in report["contact_details"] and PERSON["phone"].replace(" ", "") in \
        report["contact_details"].replace(" ", "")
    due = (timezone.now() + dt.timedelta(days=1)).isoformat()
    post(api, "/api/v1/followups/", {"interaction_id": chat_id, "due_at": due,
                                     "note": said("send Zelda the replacement")})
    post(api, "/api/v1/callbacks/", {"customer_id": customer_id, "reason": "promised", "due_at": due,
                                     "note": f"call Zelda back on {PERSON['phone']}"})
    post(api, f"/api/v1/interactions/{chat_id}/escalate/", {"target": "queue", "queue": "specialist",
                                                             "reason": said("Zelda wants a manager"),
                                                             "respond_within_minutes": 30})

    # SMS from their phone, resolved; the survey goes out by SMS and comes back with a comment.
    sms = ok("sms", {"provider_message_id": msg_id(), "from": phone, "body": said("Zelda again"),
                     "queue": "support"})["interaction"]
    accept(sms["id"])
    post(api, f"/api/v1/interactions/{sms['id']}/messages/", {"direction": "outbound", "body": said("Sure Zelda")})
    post(api, f"/api/v1/interactions/{sms['id']}/end/", {"reason": "resolved"})
    post(api, f"/api/v1/interactions/{sms['id']}/wrap-up/", {"disposition": "billing",
                                                             "notes": "Zelda happy"})
    survey = Survey.objects.get(interaction_id=sms["id"])
    post(boss_api, f"/api/v1/surveys/{survey.id}/answer/", {"csat": 4, "comment": said("Zelda says thanks")})

    # An email from their address, a call from their phone with its transcript, and a social DM from a handle
    # that a supervisor then merges into them (the same person).
    ok("email", {"provider_message_id": msg_id(), "message_id": "<z-1@mail.example>", "subject": "Zelda's invoice",
                 "from": {"kind": "email", "value": PERSON["email"]}, "to": ["support@center.example"],
                 "body": said("Dear support, Zelda Quintavalle")}, **MAIL)
    ok("voice", call("ringing", "z-call", queue="support", **{"from": phone}))
    ok("voice", call("answered", "z-call", agent_id="ann"))
    ok("voice", call("transcript", "z-call", speaker="customer", body=said("This is Zelda Quintavalle")))
    ok("voice", call("ended", "z-call", reason="resolved", duration_seconds=42))
    social = ok("social", {"provider_message_id": msg_id(), "kind": "dm", "body": said("hey it's Zelda"),
                           "from": {"kind": "social", "value": PERSON["handle"], "provider": "x"}})["interaction"]
    assert social["customer_id"] != customer_id
    post(boss_api, f"/api/v1/customers/{customer_id}/merge/", {
        "source_id": social["customer_id"], "expected_version": Customer.objects.get(id=customer_id).version})
    catch_up()

    # Before: their data is there, in clear where it is read (the search finds it: zero below means gone).
    before = Findings()
    search_database(PERSON_NEEDLES, before)
    found = {where for where, _, _ in before.hits}
    assert {"db customers_customerprofile.display_name", "db incidents_incidentreport.contact_details",
            "db incidents_incidentreport.description", "db followups_followup.note",
            "db followups_escalation.reason", "db authority_action.reason", "db frameworks_scriptrun.completed",
            "db contactcenter_idempotentrequest.response_body"} <= found, sorted(found)
    assert not [h for h in before.hits if h[0].startswith("db events_event.")]  # encrypted from the start
    assert not [h for h in before.hits if h[0] == "db interactions_conversation.conversation_id"]  # hashed keys

    erased = post(boss_api, f"/api/v1/customers/{customer_id}/erase/", {"reason": "data-protection request 17"})
    assert len(erased["positions"]) == 2  # them, and the customer merged into them
    catch_up()

    findings = Findings()
    search_database(PERSON_NEEDLES, findings)
    search_topic(topic, PERSON_NEEDLES, findings)
    search_events_decrypted(PERSON_NEEDLES, findings)
    search_logs(logs, PERSON_NEEDLES, findings)
    print(f"\nprivacy proof 2 (erasure): {findings.tables} tables, {findings.columns} columns, {findings.rows} rows, "
          f"{findings.values} values, {findings.records} Kafka records, {findings.events} events decrypted, "
          f"{findings.log_lines} log lines searched; hits: {len(findings.hits)}")
    assert_nothing_found(findings)
    assert findings.records == findings.events == Event.objects.count()
    assert not CustomerIdentity.objects.filter(customer_id__in=[customer_id, social["customer_id"]]).exists()
    ids = Interaction.objects.filter(customer_id__in=[customer_id, social["customer_id"]]).values_list("id")
    assert not Conversation.objects.filter(interaction_id__in=ids).exists()
    # What stays: the facts without the person (the report's kind and times, the follow-up's due time).
    kept = IncidentReport.objects.get(id=report["id"])
    assert (kept.kind, kept.action_taken, kept.description) == ("abuse", "warned", "[erased]")
    # A new message from that number is a new customer, not the erased one's thread.
    again = ok("sms", {"provider_message_id": msg_id(), "from": phone, "body": "hello?"})["interaction"]
    assert again["customer_id"] not in (customer_id, social["customer_id"])


# --- 3. the subject-access export ------------------------------------------------------------------------------


def test_the_export_gives_the_person_their_data_to_admins_and_exporters_only_and_nothing_once_erased(
        settings, topic, background):
    settings.SURVEY_KIND = "csat"
    make_queue("support")
    ann = make_agent("ann", capacity={"chat": 3})
    boss = get_user_model().objects.create_user(username="boss", password="x", is_staff=True)
    dpo = get_user_model().objects.create_user(username="dpo", password="x")  # the permission, nothing else
    dpo.user_permissions.add(Permission.objects.get(content_type__app_label="contactcenter",
                                                    codename="export_personal_data"))
    api, boss_api, dpo_api = client_for(ann.user), client_for(boss), client_for(dpo)
    run_pipeline(background)

    def post(client, url, body):
        response = client.post(url, body, format="json")
        assert response.status_code in (200, 201), (url, response.status_code, response.content)
        return response.json()

    customer_id = post(boss_api, "/api/v1/customers/", {"display_name": PERSON["name"], "email": PERSON["email"],
                                                        "phone": PERSON["phone"], "preferred_channel": "chat"})["id"]
    boss_api.patch(f"/api/v1/customers/{customer_id}/", {
        "expected_version": Customer.objects.get(id=customer_id).version, "language": "en-GB",
        "notes": "prefers mornings (sassafras)"}, format="json")
    chat = ok("chat", {"provider_message_id": msg_id(), "event": "start", "conversation_id": "x-1", "queue": "support",
                       "from": {"kind": "phone", "value": PERSON["phone"]}, "body": "my parcel is late (lapis)"})
    chat_id = chat["interaction"]["id"]
    routing_services.dispatch()
    post(api, f"/api/v1/interactions/{chat_id}/accept/", {})
    post(api, f"/api/v1/interactions/{chat_id}/messages/", {"direction": "outbound", "body": "On its way (quokka)"})
    due = (timezone.now() + dt.timedelta(days=1)).isoformat()
    post(api, "/api/v1/followups/", {"interaction_id": chat_id, "due_at": due, "note": "check the parcel (ocelot)"})
    post(api, "/api/v1/callbacks/", {"customer_id": customer_id, "reason": "promised", "due_at": due,
                                     "note": f"call back on {PERSON['phone']}"})
    catch_up()
    report = post(api, "/api/v1/incidents/", {
        "interaction_id": chat_id, "kind": "other", "description": "she said: 'late again' (narwhal)",
        "agent_responses": "apologised", "deescalation_steps": "listened", "action_taken": "other",
        "supervisor": "boss"})
    post(api, f"/api/v1/interactions/{chat_id}/end/", {"reason": "resolved"})
    post(api, f"/api/v1/interactions/{chat_id}/wrap-up/", {"disposition": "parcel_late"})
    survey = Survey.objects.get(interaction_id=chat_id)
    post(boss_api, f"/api/v1/surveys/{survey.id}/answer/", {"csat": 3, "comment": "fine in the end (pangolin)"})
    catch_up()
    url = f"/api/v1/customers/{customer_id}/export/"

    # Anyone else: 404, as for no such customer, and on record. The agent who served them included.
    assert api.get(url).status_code == 404
    assert api.get(f"/api/v1/customers/{uuid.uuid4()}/export/").status_code == 404
    assert client_for(make_agent("bob").user).get(url).status_code == 404
    assert APIClient().get(url).status_code == 401
    assert AuditEntry.objects.filter(outcome="denied", username="ann", object_id=customer_id,
                                     action="customers.export").exists()
    assert boss_api.get(f"/api/v1/customers/{uuid.uuid4()}/export/").status_code == 404

    response = dpo_api.get(url)
    assert response.status_code == 200, response.content
    doc = response.json()
    assert (doc["customer_id"], doc["erased"]) == (customer_id, False)
    assert doc["profile"]["display_name"] == PERSON["name"] and doc["profile"]["email"] == PERSON["email"]
    assert doc["profile"]["notes"] == "prefers mornings (sassafras)"
    assert doc["preferences"] == {"preferred_channel": "chat", "language": "en-GB", "contact_hours": {}}
    assert {(i["kind"], i["value"], i["linked"]) for i in doc["identities"]} == {
        ("email", PERSON["email"], True), ("phone", "+442079460321", True)}
    bodies = [e["data"]["body"] for e in doc["timeline"] if e["event_type"] == "interactions.MessageRecorded"]
    assert "my parcel is late (lapis)" in bodies and "On its way (quokka)" in bodies
    assert all(e["occurred_at"] and "channel" in e for e in doc["timeline"])
    (contact,) = [i for i in doc["interactions"] if i["id"] == chat_id]
    assert (contact["channel"], contact["status"], contact["dispositions"]) == ("chat", "resolved", ["parcel_late"])
    assert contact["answered_at"] and contact["ended_at"] and contact["end_reason"] == "resolved"
    assert [c["note"] for c in doc["callbacks"]] == [f"call back on {PERSON['phone']}"]
    assert [f["note"] for f in doc["followups"]] == ["check the parcel (ocelot)"]
    assert [(s["csat"], s["comment"]) for s in doc["surveys"]] == [(3, "fine in the end (pangolin)")]
    (filed,) = doc["incident_reports"]
    assert filed["id"] == report["id"] and "narwhal" in filed["description"]
    assert PERSON["name"] in filed["contact_details"]
    assert {(a["username"], a["outcome"]) for a in doc["access_log"]} >= {("ann", "denied")}
    assert boss_api.get(url).status_code == 200  # admins too
    reads = AuditEntry.objects.filter(outcome="read", action="customers.export", object_id=customer_id)
    assert sorted(reads.values_list("username", flat=True)) == ["boss", "dpo"]

    # Erased: the export says so and holds nothing of them.
    post(boss_api, f"/api/v1/customers/{customer_id}/erase/", {"reason": "data-protection request 18"})
    catch_up()
    gone = dpo_api.get(url)
    assert gone.status_code == 200
    doc = gone.json()
    assert doc["erased"] is True and doc["erased_at"] and doc["profile"] is None
    assert all(doc[k] == [] for k in ("identities", "timeline", "interactions", "callbacks", "followups",
                                      "escalations", "actions", "surveys", "incident_reports", "script_runs",
                                      "access_log", "merged_from"))
    text = json.dumps(doc)
    assert not [n.label for n in PERSON_NEEDLES if n.found_in(text)]
    assert AuditEntry.objects.filter(outcome="read", action="customers.export", object_id=customer_id).count() == 3


def test_the_export_is_in_the_api_schema(staff_api):
    schema = staff_api.get("/api/schema/?format=json")
    assert schema.status_code == 200
    operation = schema.json()["paths"]["/api/v1/customers/{customer_id}/export/"]["get"]
    assert operation["operationId"] == "customer_export" and {"200", "404"} <= set(operation["responses"])
