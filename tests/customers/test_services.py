"""Identity resolution: a touch finds its customer, or makes exactly one."""

import threading

import pytest
from django.db import connections

from customers import services
from customers.identity import identity
from customers.models import Customer, CustomerIdentity
from events import store
from events.store import Metadata

pytestmark = pytest.mark.django_db(transaction=True)


def test_resolve_finds_the_owner_across_spellings():
    registered = services.customer_register(display_name="Ada", phone="+1 415 555 0123", meta=Metadata())
    found, created = services.customer_resolve(ident=identity("phone", "(415) 555-0123"), meta=Metadata())
    assert (found, created) == (registered.customer_id, False)


def test_resolve_registers_an_unknown_identity_once():
    ident = identity("social", "@ada_l", provider="instagram")
    first, created = services.customer_resolve(ident=ident, meta=Metadata(), display_name="Ada L")
    again, created_again = services.customer_resolve(ident=ident, meta=Metadata())
    assert created and not created_again and first == again
    kinds = [e.event_type for e in store.read_stream(first)]
    assert kinds == ["customers.CustomerRegistered", "customers.IdentityLinked"]
    assert store.read_stream(first)[1].data == {"kind": "social", "value": "ada_l", "provider": "instagram"}


def test_racing_first_touches_make_one_customer():
    ident = identity("email", "race@example.com")
    barrier = threading.Barrier(4)
    results = []

    def touch():
        try:
            barrier.wait(timeout=10)
            results.append(services.customer_resolve(ident=ident, meta=Metadata())[0])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=touch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 4 and len(set(results)) == 1
    assert Customer.objects.count() == 1 and CustomerIdentity.objects.count() == 1


def test_identities_are_stored_as_keyed_hashes_only():
    services.customer_register(display_name="Ada", email="ada@example.com", meta=Metadata())
    row = CustomerIdentity.objects.get()
    assert "ada" not in row.key_hash and len(row.key_hash) == 64
