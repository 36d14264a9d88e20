"""Given state, when a command, then events: no database."""

import pytest

from customers import domain
from customers.events import CustomerDetailsChanged, CustomerErased, CustomerRegistered


def test_register_decides_one_registration():
    assert domain.decide_register(display_name="Ada", email=None, phone="123", preferred_channel="sms") == [
        CustomerRegistered(display_name="Ada", email=None, phone="123", preferred_channel="sms")
    ]


def test_change_keeps_only_given_fields():
    state = domain.CustomerState(version=3, erased=False)
    assert domain.decide_change_details(state, email="a@b.c", phone=None) == [CustomerDetailsChanged(email="a@b.c")]


def test_change_needs_something_to_change():
    with pytest.raises(domain.NothingToChange):
        domain.decide_change_details(domain.CustomerState(version=1, erased=False), phone=None)


def test_an_erased_customer_cannot_change():
    with pytest.raises(domain.CustomerIsErased):
        domain.decide_change_details(domain.CustomerState(version=2, erased=True), email="x@y.z")


def test_erase_twice_decides_nothing_the_second_time():
    assert domain.decide_erase(domain.CustomerState(1, False), reason="r") == [CustomerErased(reason="r")]
    assert domain.decide_erase(domain.CustomerState(2, True), reason="r") == []
