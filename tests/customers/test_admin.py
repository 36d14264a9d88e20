"""The customer page in the admin: identities and the latest of the timeline, read-only."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from customers import services
from events import store
from events.projection import apply_envelopes
from events.projection import get as get_projection
from events.store import Metadata

pytestmark = pytest.mark.django_db(transaction=True)


def test_customer_page_shows_identities_and_timeline():
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    cid = services.customer_register(display_name="Ada", email="ada@example.com", meta=Metadata()).customer_id
    apply_envelopes(get_projection("customers.timeline"), store.read_all())
    page = client.get(f"/admin/customers/customer/{cid}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "customers.CustomerRegistered" in html and "customers.IdentityLinked" in html
    assert "all 2 timeline entries" in html and f"customer_id__exact={cid}" in html
    linked = client.get(f"/admin/customers/timelineentry/?customer_id__exact={cid}")
    assert linked.status_code == 200 and linked.context_data["cl"].result_count == 2
