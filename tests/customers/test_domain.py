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


def test_change_splits_details_profile_and_new_identities():
    from customers.events import IdentityLinked, ProfileUpdated
    from customers.identity import Identity

    state = domain.CustomerState(version=3, erased=False)
    assert domain.decide_change_details(
        state, email="a@b.cd", vip_tier="gold", tags=[" VIP ", "vip", "churn-risk"], language="de-de",
        identities=[Identity("email", "a@b.cd")],
    ) == [
        CustomerDetailsChanged(email="a@b.cd"),
        ProfileUpdated(language="de-DE", vip_tier="gold", tags=["vip", "churn-risk"]),
        IdentityLinked(kind="email", value="a@b.cd"),
    ]


@pytest.mark.parametrize(("raw", "canonical"), [
    ("en", "en"), ("EN-gb", "en-GB"), ("zh-hant-tw", "zh-Hant-TW"), ("es-419", "es-419"), ("sr_Latn", "sr-Latn"),
    ("de-DE-1996", "de-DE-1996"), ("en-US-u-ca-gregory", "en-US-u-ca-gregory"), ("", ""),
])
def test_language_tags_are_normalised(raw, canonical):
    assert domain.normalize_language(raw) == canonical


@pytest.mark.parametrize("raw", ["english", "e", "en-", "en--us", "123", "en-USA-x", "x-private", "en_US.UTF-8", "a" * 36])
def test_malformed_language_tags_are_refused(raw):
    with pytest.raises(domain.InvalidValue) as exc:
        domain.normalize_language(raw)
    assert exc.value.field == "language"


@pytest.mark.parametrize("raw", [
    {"tz": "Mars/Olympus", "from": "09:00", "to": "17:00"},
    {"tz": "Europe/Berlin", "from": "9:00", "to": "17:00"},
    {"tz": "Europe/Berlin", "from": "09:00", "to": "24:00"},
    {"tz": "Europe/Berlin", "from": "09:00", "to": "09:00"},
    {"tz": "Europe/Berlin", "from": "09:00"},
    {"tz": "Europe/Berlin", "from": "09:00", "to": "17:00", "days": "mon"},
    "9 to 5",
])
def test_bad_contact_hours_are_refused(raw):
    with pytest.raises(domain.InvalidValue) as exc:
        domain.normalize_contact_hours(raw)
    assert exc.value.field == "contact_hours"


def test_contact_hours_over_midnight_and_clearing_are_fine():
    night = {"tz": "America/New_York", "from": "22:00", "to": "06:00"}
    assert domain.normalize_contact_hours(night) == night
    assert domain.normalize_contact_hours({}) == {}


@pytest.mark.parametrize(("changes", "field"), [
    ({"vip_tier": "diamond"}, "vip_tier"), ({"tags": ["x" * 33]}, "tags"), ({"tags": [""]}, "tags"),
    ({"tags": [str(i) for i in range(21)]}, "tags"), ({"notes": "n" * 2001}, "notes"),
])
def test_bad_profile_values_name_the_field(changes, field):
    with pytest.raises(domain.InvalidValue) as exc:
        domain.decide_change_details(domain.CustomerState(1, False), **changes)
    assert exc.value.field == field


def test_a_merged_customer_cannot_change():
    with pytest.raises(domain.CustomerIsMerged):
        domain.decide_change_details(domain.CustomerState(2, False, merged_into="t"), vip_tier="gold")


def test_merge_decides_an_event_on_each_side():
    from customers.events import CustomerMerged, CustomerMergedInto

    live = domain.CustomerState(3, False)
    assert domain.decide_merge(live, live, target_id="t", source_id="s", identities_moved=2) == (
        [CustomerMerged(source_id="s", identities_moved=2)], [CustomerMergedInto(target_id="t")]
    )


@pytest.mark.parametrize(("target", "source", "target_id", "error"), [
    (domain.CustomerState(3, False), domain.CustomerState(3, False), "s", domain.InvalidValue),
    (domain.CustomerState(3, True), domain.CustomerState(3, False), "t", domain.CustomerIsErased),
    (domain.CustomerState(3, False, merged_into="x"), domain.CustomerState(3, False), "t", domain.CustomerIsMerged),
    (domain.CustomerState(3, False), domain.CustomerState(3, True), "t", domain.CustomerIsErased),
    (domain.CustomerState(3, False), domain.CustomerState(3, False, merged_into="x"), "t", domain.CustomerIsMerged),
])
def test_merge_refusals(target, source, target_id, error):
    with pytest.raises(error):
        domain.decide_merge(target, source, target_id=target_id, source_id="s", identities_moved=0)
