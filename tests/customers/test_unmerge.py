"""Unmerge: a merge undone restores both customers, with the touches that came after it; merges that only suggest."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.test import APIClient

from customers import domain, services
from customers.identity import identity
from customers.models import (
    Customer,
    CustomerIdentity,
    CustomerProfile,
    IdentityTouch,
    MergeSuggestion,
    TimelineEntry,
    TimelineMerge,
)
from events import store
from events.checksum import checksum, replay_checksums
from events.models import DeadLetter, Event
from events.projection import apply_envelopes
from events.projection import get as get_projection
from events.store import Metadata
from interactions import services as interactions
from interactions.events import MessageRecorded

pytestmark = pytest.mark.django_db(transaction=True)

META = Metadata()
PROJECTIONS = ("customers.directory", "customers.timeline")


def project(envelopes=None):
    """Apply what the customer projections have not applied yet (live, incrementally)."""
    envelopes = store.read_all(limit=100_000) if envelopes is None else envelopes
    for name in PROJECTIONS:
        apply_envelopes(get_projection(name), envelopes)


def email(name):
    return identity("email", f"{name}@example.com")


def chat(ident):
    """A new chat opened by whoever `ident` leads to (resolution at intake, as the webhooks do)."""
    return interactions.interaction_create(channel="chat", direction="inbound", meta=META, ident=ident).interaction


def message(interaction, body="still there?"):
    """A later message on an interaction: its events keep naming the customer it started with."""
    version = store.stream_version(interaction.id)
    store.append(stream_type="interaction", stream_id=interaction.id, customer_id=interaction.customer_id,
                 expected_version=version, events=[MessageRecorded(direction="inbound", body=body)],
                 meta=Metadata(channel="chat"))


def timeline(customer_id):
    return sorted(TimelineEntry.objects.filter(customer_id=customer_id).values_list("position", flat=True))


def identities(customer_id):
    return set(CustomerIdentity.objects.filter(customer_id=customer_id).values_list("key_hash", flat=True))


def history():
    """Source S and target T, each with a chat; S merged into T; then a chat through S's address and one through
    T's; the chat through S's address goes on after the merge."""
    s = services.customer_register(display_name="Sam", email="sam@example.com", meta=META).customer_id
    t = services.customer_register(display_name="Tess", email="tess@example.com", meta=META).customer_id
    s_chat, t_chat = chat(email("sam")), chat(email("tess"))
    assert (s_chat.customer_id, t_chat.customer_id) == (s, t)
    project()
    before = {"s": timeline(s), "t": timeline(t), "s_ids": identities(s), "t_ids": identities(t)}
    services.customer_merge(customer_id=t, source_id=s, expected_version=2, meta=META)
    late = chat(email("sam"))  # S's address leads to T now
    late_t = chat(email("tess"))
    assert late.customer_id == t and late_t.customer_id == t
    message(late)
    return s, t, late, late_t, before


def test_unmerge_restores_both_customers_with_the_touches_that_came_after_the_merge():
    s, t, late, late_t, before = history()
    project()
    assert timeline(s) == [] and set(timeline(t)) >= set(before["s"]) | set(before["t"])
    assert identities(t) == before["s_ids"] | before["t_ids"]
    assert IdentityTouch.objects.filter(interaction_id=late.id).exists()  # noted at intake: a moved identity
    assert not IdentityTouch.objects.filter(interaction_id=late_t.id).exists()  # T's own address: not noted

    result = services.customer_unmerge(customer_id=t, source_id=s, expected_version=3, meta=META)
    assert result.version == 4
    message(late)  # the returned chat goes on after the unmerge: still under T's id in its events
    project()

    # Write side: identities back where they were, source writable again, both versions moved.
    assert identities(s) == before["s_ids"] and identities(t) == before["t_ids"]
    rows = {c.id: c for c in Customer.objects.filter(id__in=[s, t])}
    assert rows[s].merged_into is None and (rows[s].version, rows[t].version) == (4, 4)
    assert services.customer_resolve(ident=email("sam"), meta=META) == (s, False)
    services.customer_change_details(customer_id=s, expected_version=4, meta=META, vip_tier="gold")

    # Directory: merged_into cleared, versions as the commands see them.
    project()
    profiles = {p.customer_id: p for p in CustomerProfile.objects.filter(customer_id__in=[s, t])}
    assert profiles[s].merged_into is None and profiles[s].vip_tier == "gold"
    assert (profiles[s].version, profiles[t].version) == (5, 4)

    # Timeline: each customer's own history back on their own, the chat through S's address on S's (every event of
    # it, before and after the unmerge), the chat through T's address on T's.
    late_entries = set(TimelineEntry.objects.filter(stream_id=late.id).values_list("position", flat=True))
    assert len(late_entries) >= 3  # opened (and what intake adds), a message before the unmerge, one after
    s_timeline, t_timeline = set(timeline(s)), set(timeline(t))
    assert set(before["s"]) | late_entries <= s_timeline
    assert set(before["t"]) <= t_timeline and not (s_timeline & t_timeline)
    assert TimelineEntry.objects.filter(stream_id=late_t.id).exclude(customer_id=t).count() == 0
    assert not TimelineMerge.objects.filter(source_id=s).exists()
    unmerge_events = list(Event.objects.filter(event_type__startswith="customers.CustomerUnmerged")
                          .values_list("stream_id", "event_type"))
    assert sorted(unmerge_events) == sorted([(t, "customers.CustomerUnmerged"), (s, "customers.CustomerUnmergedFrom")])
    (unmerged,) = [e for e in store.read_stream(t) if e.event_type == "customers.CustomerUnmerged"]
    assert unmerged.data["interactions_returned"] == [str(late.id)] and unmerged.data["identities_returned"] == 1
    assert not DeadLetter.objects.exists()


def bodies(interaction):
    return [e.data["body"] for e in store.read_stream(interaction.id) if e.event_type == MessageRecorded.event_type]


def timeline_bodies(customer_id):
    from events.crypto import KeyRing

    rows = list(TimelineEntry.objects.filter(customer_id=customer_id, event_type=MessageRecorded.event_type))
    ring = KeyRing.load(r.key_id for r in rows)
    return sorted(ring.decrypt_data(r.key_id, r.data)["body"] for r in rows)


def test_erasing_the_source_after_an_unmerge_shreds_the_contacts_given_back_and_nothing_of_the_target():
    s, t, late, late_t, _ = history()
    message(late, "sam: my new address is 1 Elm St")
    message(late_t, "tess: call me after six")
    raw = Event.objects.filter(stream_id=late.id, event_type=MessageRecorded.event_type).values_list("data", flat=True)
    own = {v.get("k") for d in raw for v in d.values() if isinstance(v, dict) and "$pii" in v}
    assert len(own) == 1 and None not in own  # the chat through S's address: a key of its own
    assert not Event.objects.filter(stream_id=late_t.id, data__body__has_key="k").exists()  # T's own: T's key
    services.customer_unmerge(customer_id=t, source_id=s, expected_version=3, meta=META)
    message(late, "sam: still there?")
    project()
    assert timeline_bodies(s) == ["sam: my new address is 1 Elm St", "sam: still there?", "still there?"]

    services.customer_erase(customer_id=s, reason="request 42", meta=META)
    project()
    assert set(bodies(late)) == {"[erased]"}  # the store: shredded, not hidden
    assert set(timeline_bodies(s)) == {"[erased]"}
    assert "tess: call me after six" in bodies(late_t) and "tess: call me after six" in timeline_bodies(t)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM events_customer_key WHERE customer_id = %s AND wrapped_key IS NOT NULL",
                    [t])
        assert cur.fetchone()[0] == 1  # the target's key stays


def test_erasing_the_target_while_merged_shreds_the_contacts_through_the_source_s_identities_too():
    s, t, late, late_t, _ = history()
    message(late, "sam: my new address is 1 Elm St")
    services.customer_erase(customer_id=t, reason="request 43", meta=META)
    assert set(bodies(late)) == {"[erased]"} and set(bodies(late_t)) <= {"[erased]"}


def test_merge_and_unmerge_converge_live_equals_replay_in_any_delivery_order():
    """A into S, S into T, a late touch through A's address; then S out of T: A stays with S."""
    s, t, late, _, _ = history()
    a = services.customer_register(display_name="Al", email="al@example.com", meta=META).customer_id
    with pytest.raises(domain.CustomerIsMerged):  # S is read-only while merged
        services.customer_merge(customer_id=s, source_id=a, expected_version=3, meta=META)
    services.customer_unmerge(customer_id=t, source_id=s, expected_version=3, meta=META)
    services.customer_merge(customer_id=s, source_id=a, expected_version=4, meta=META)
    services.customer_merge(customer_id=t, source_id=s, expected_version=4, meta=META)
    late_a = chat(email("al"))  # A's address: A into S into T, leads to T
    assert late_a.customer_id == t
    services.customer_unmerge(customer_id=t, source_id=s, expected_version=5, meta=META)
    assert services.customer_resolve(ident=email("al"), meta=META) == (s, False)
    message(late_a)

    everything = store.read_all(limit=100_000)
    project(everything)
    live = {name: checksum(get_projection(name)) for name in PROJECTIONS}
    rebuilt, diffs = replay_checksums([get_projection(n) for n in PROJECTIONS], live=live, diff_limit=5)
    for name in PROJECTIONS:
        assert live[name].digest == rebuilt[name].digest, f"{name} differs from a replay: {diffs[name]}"
    replayed = snapshot()
    # A (merged into S) and its late chat are S's again; the late chat through Sam's address too.
    assert {TimelineEntry.objects.get(stream_id=late_a.id, event_type__endswith="Created").customer_id,
            TimelineEntry.objects.get(stream_id=late.id, event_type__endswith="Created").customer_id} == {s}
    assert dict(TimelineMerge.objects.values_list("source_id", "target_id")) == {a: s}
    assert set(timeline(a)) == set()

    # Partitions deliver each customer's events in order, customers interleaved in any way.
    by_customer: dict = {}
    for env in everything:
        by_customer.setdefault(env.customer_id, []).append(env)
    orders = [[[e] for e in everything]]
    for customers in ([s, t, a], [t, a, s], [a, t, s]):
        orders.append([by_customer[x] for x in customers])
    for batches in orders:
        assert rebuild(batches) == replayed


def snapshot():
    return (list(TimelineEntry.objects.order_by("position").values_list("position", "customer_id", "owner_id")),
            list(TimelineMerge.objects.order_by("source_id").values_list("source_id", "target_id", "parent_id")),
            list(CustomerProfile.objects.order_by("customer_id").values()))


def rebuild(batches):
    with connection.cursor() as cur:
        cur.execute("TRUNCATE customers_timelineentry, customers_timelinemerge, customers_timelinereassigned,"
                    " customers_customerprofile")
        cur.execute("DELETE FROM events_projection_stream")
    for batch in batches:
        project(batch)
    return snapshot()


def test_unmerge_of_a_pair_not_merged_is_409_and_writes_nothing():
    a = services.customer_register(display_name="A", meta=META).customer_id
    b = services.customer_register(display_name="B", meta=META).customer_id
    c = services.customer_register(display_name="C", meta=META).customer_id
    services.customer_merge(customer_id=c, source_id=b, expected_version=1, meta=META)
    count = Event.objects.count()
    for target, source in ((a, b), (b, c), (a, a)):  # merged elsewhere; the wrong way round; itself
        with pytest.raises(domain.CustomerError) as refused:
            services.customer_unmerge(customer_id=target, source_id=source, expected_version=1, meta=META)
        assert refused.value.code in ("not_merged", "invalid_value", "customer_merged")
    with pytest.raises(domain.NotMergedInto):
        services.customer_unmerge(customer_id=a, source_id=b, expected_version=1, meta=META)
    assert Event.objects.count() == count
    assert Customer.objects.get(id=b).merged_into == c


def admin_client():
    admin = get_user_model().objects.create_user(username="admin-unmerge", password="pw", is_staff=True)
    return client_for(admin)


def client_for(user):
    from rest_framework.authtoken.models import Token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.get_or_create(user=user)[0].key}")
    return client


def test_unmerge_api_admin_only(api, staff_api):
    s = services.customer_register(display_name="S", meta=META).customer_id
    t = services.customer_register(display_name="T", meta=META).customer_id
    services.customer_merge(customer_id=t, source_id=s, expected_version=1, meta=META)
    url, body = f"/api/v1/customers/{t}/unmerge/", {"source_id": str(s), "expected_version": 2}

    agent = api.post(url, body, format="json")
    assert agent.status_code == 403
    assert Customer.objects.get(id=s).merged_into == t

    missing = staff_api.post(url, {"expected_version": 2}, format="json")
    assert missing.status_code == 400 and "source_id" in missing.json(), missing.json()  # field by field
    stale = staff_api.post(url, {**body, "expected_version": 1}, format="json")
    assert stale.status_code == 409 and Customer.objects.get(id=s).merged_into == t

    done = staff_api.post(url, body, format="json")
    assert done.status_code == 200 and done.json()["version"] == 3, done.content
    assert Customer.objects.get(id=s).merged_into is None
    again = staff_api.post(url, {**body, "expected_version": 3}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "not_merged"
    assert staff_api.post(f"/api/v1/customers/{uuid.uuid4()}/unmerge/", body, format="json").status_code == 404


def test_suggest_mode_records_a_suggestion_and_merges_nothing(settings, client):
    settings.IDENTITY_AUTO_MERGE = "suggest"
    owner = services.customer_register(display_name="Owner", email="shared@example.com", meta=META).customer_id
    other = services.customer_register(display_name="Other", meta=META).customer_id
    events_before = Event.objects.count()
    for _ in range(2):  # twice: still one pending suggestion
        with pytest.raises(domain.IdentityTaken) as taken:
            services.customer_change_details(customer_id=other, expected_version=1, meta=META,
                                             email="Shared@example.com")
        assert "suggested" in str(taken.value)
    assert Event.objects.count() == events_before  # nothing merged, nothing changed
    assert not Customer.objects.filter(merged_into__isnull=False).exists()
    (suggestion,) = MergeSuggestion.objects.all()
    assert (suggestion.target_id, suggestion.source_id, suggestion.kind, suggestion.status) == (
        owner, other, "email", "pending")

    # The review queue in the admin: "merge" calls customer_merge.
    admin = get_user_model().objects.create_superuser(username="queue-admin", password="pw")
    client.force_login(admin)
    page = client.get("/admin/customers/mergesuggestion/")
    assert page.status_code == 200 and str(other) in page.content.decode()
    response = client.post("/admin/customers/mergesuggestion/",
                           {"action": "merge", "_selected_action": [suggestion.pk]})
    assert response.status_code == 302
    suggestion.refresh_from_db()
    assert suggestion.status == "merged" and suggestion.decided_by == "queue-admin"
    assert Customer.objects.get(id=other).merged_into == owner
    with pytest.raises(services.SuggestionDecided):
        services.merge_suggestion_dismiss(suggestion_id=suggestion.pk, meta=META)


def test_merge_mode_suggests_nothing(settings):
    settings.IDENTITY_AUTO_MERGE = "merge"
    services.customer_register(display_name="Owner", email="mine@example.com", meta=META)
    other = services.customer_register(display_name="Other", meta=META).customer_id
    with pytest.raises(domain.IdentityTaken):
        services.customer_change_details(customer_id=other, expected_version=1, meta=META, email="mine@example.com")
    assert not MergeSuggestion.objects.exists()


def test_dismiss_closes_the_suggestion_without_merging():
    a = services.customer_register(display_name="A", meta=META).customer_id
    b = services.customer_register(display_name="B", meta=META).customer_id
    suggestion = services.merge_suggestion_record(target_id=a, source_id=b, kind="phone")
    assert services.merge_suggestion_record(target_id=b, source_id=a, kind="phone") == suggestion  # either way round
    services.merge_suggestion_dismiss(suggestion_id=suggestion.pk, meta=META)
    suggestion.refresh_from_db()
    assert suggestion.status == "dismissed" and Customer.objects.get(id=b).merged_into is None


def test_decide_unmerge_given_states_then_events():
    """Domain: given the two states, when unmerging, then the pair of events (or the refusal)."""
    t, s = uuid.uuid4(), uuid.uuid4()
    touch = uuid.uuid4()
    target, source = domain.CustomerState(version=3, erased=False), domain.CustomerState(3, False, merged_into=t)
    to_target, to_source = domain.decide_unmerge(target, source, target_id=t, source_id=s, identities_returned=2,
                                                 interactions_returned=[touch])
    assert to_target == [domain.CustomerUnmerged(source_id=s, identities_returned=2,
                                                 interactions_returned=[str(touch)])]
    assert to_source == [domain.CustomerUnmergedFrom(target_id=t)]
    with pytest.raises(domain.NotMergedInto):  # merged into someone else
        domain.decide_unmerge(target, domain.CustomerState(3, False, merged_into=uuid.uuid4()), target_id=t,
                              source_id=s, identities_returned=0, interactions_returned=[])
    with pytest.raises(domain.CustomerIsErased):
        domain.decide_unmerge(domain.CustomerState(3, True), source, target_id=t, source_id=s,
                              identities_returned=0, interactions_returned=[])
