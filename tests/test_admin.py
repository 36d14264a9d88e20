"""The admin: every page renders; retry and erase actions work; read-only stays read-only."""


import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from customers import services
from customers.models import CustomerProfile
from events import store
from events.crypto import ERASED
from events.models import DeadLetter, Event
from events.projection import apply_envelopes
from events.projection import get as get_projection
from events.store import Metadata

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client_():
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def register(name="Ada"):
    return services.customer_register(display_name=name, email=f"{name.lower()}@example.com",
                                      meta=Metadata()).customer_id


@pytest.mark.parametrize(
    "model", ["events/event", "events/outboxentry", "events/deadletter", "events/projectionstate",
              "events/relaystate", "customers/customerprofile", "customers/customer", "customers/timelineentry",
              "interactions/interaction", "interactions/case", "routing/agent", "routing/queue", "routing/skill",
              "routing/team", "routing/work"],
)
def test_every_changelist_renders(admin_client_, model):
    register()
    apply_envelopes(get_projection("customers.directory"), store.read_all())
    response = admin_client_.get(f"/admin/{model}/")
    assert response.status_code == 200


def test_events_are_read_only_and_searchable_by_stream(admin_client_):
    cid = register()
    other = register("Grace")
    response = admin_client_.get("/admin/events/event/", {"q": str(cid)})
    assert str(cid) in response.content.decode() and str(other) not in response.content.decode()
    event = Event.objects.filter(stream_id=cid).first()
    assert admin_client_.post(f"/admin/events/event/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Event.objects.filter(pk=event.pk).exists()


def test_dead_letter_retry_action(admin_client_):
    register()
    env = store.read_all()[0]
    dl = DeadLetter.objects.create(projection="customers.directory", position=env.position, event_id=env.event_id,
                                   event_type=env.event_type, stream_id=env.stream_id, error="boom")
    response = admin_client_.post("/admin/events/deadletter/", {"action": "retry", "_selected_action": [dl.pk]})
    assert response.status_code == 302
    dl.refresh_from_db()
    assert dl.resolved_at is not None
    assert CustomerProfile.objects.filter(customer_id=env.customer_id).exists()


def test_erase_action_needs_permission_and_erases(admin_client_):
    cid = register()
    apply_envelopes(get_projection("customers.directory"), store.read_all())
    staff = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    viewer = Client()
    viewer.force_login(staff)
    refused = viewer.post("/admin/customers/customerprofile/", {"action": "erase", "_selected_action": [str(cid)]})
    assert refused.status_code == 403
    assert store.read_stream(cid)[0].data["display_name"] == "Ada"

    response = admin_client_.post("/admin/customers/customerprofile/",
                                  {"action": "erase", "_selected_action": [str(cid)]})
    assert response.status_code == 302
    assert store.read_stream(cid)[0].data["display_name"] == ERASED


def test_a_timeline_entry_shows_its_personal_fields_decrypted_until_erasure(admin_client_):
    cid = register("Ada")
    apply_envelopes(get_projection("customers.timeline"), store.read_all())
    from customers.models import TimelineEntry

    entry = TimelineEntry.objects.get(customer_id=cid, event_type="customers.CustomerRegistered")
    assert "ada@example.com" in admin_client_.get(f"/admin/customers/timelineentry/{entry.pk}/change/").content.decode()
    services.customer_erase(customer_id=cid, reason="test", meta=Metadata())
    page = admin_client_.get(f"/admin/customers/timelineentry/{entry.pk}/change/").content.decode()
    assert "ada@example.com" not in page and "[erased]" in page


def test_a_queue_policy_that_cannot_be_used_is_refused_in_the_admin(admin_client_):
    from routing.models import Queue

    response = admin_client_.post("/admin/routing/queue/add/", {
        "name": "billing", "channels": '["chat"]', "language": "", "priority": 0, "service_level_percent": 80,
        "service_level_seconds": 20, "business_hours": "{}", "offer_timeout_seconds": 20, "max_missed_offers": 3,
        "expansion": '[{"after_seconds": 30}, {"after_seconds": 10}]', "vip_boost": 0, "repeat_boost": 0,
        "preferred_agent_hours": 0, "tie_break": "longest_idle",
        "skills-TOTAL_FORMS": 0, "skills-INITIAL_FORMS": 0, "skills-MIN_NUM_FORMS": 0, "skills-MAX_NUM_FORMS": 1000,
    })
    assert response.status_code == 200 and "after_seconds must grow" in response.content.decode()
    assert not Queue.objects.exists()
