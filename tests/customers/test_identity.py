"""Identity normalisation: the same person written differently is the same identity."""

import pytest

from customers.identity import Identity, InvalidIdentity, identity


@pytest.mark.parametrize(
    "raw",
    ["+1 415-555-0123", "(415) 555-0123", "415.555.0123", "+14155550123", "011 1 415 555 0123", " 4155550123 "],
)
def test_phone_numbers_normalise_to_e164(raw):
    assert identity("phone", raw, default_region="US") == Identity("phone", "+14155550123")


def test_phone_numbers_use_the_default_region_only_without_a_country_code():
    assert identity("phone", "020 7946 0018", default_region="GB").value == "+442079460018"
    assert identity("phone", "+44 20 7946 0018", default_region="US").value == "+442079460018"


@pytest.mark.parametrize("raw", ["call me", "123", "+1 000", ""])
def test_bad_phone_numbers_name_the_field(raw):
    with pytest.raises(InvalidIdentity) as exc:
        identity("phone", raw)
    assert exc.value.field == "phone"


def test_emails_are_trimmed_and_lower_cased():
    assert identity("email", "  Ada.Lovelace@Example.COM ").value == "ada.lovelace@example.com"


@pytest.mark.parametrize("raw", ["ada", "ada@", "@example.com", "a b@example.com", "ada@example"])
def test_bad_emails_name_the_field(raw):
    with pytest.raises(InvalidIdentity) as exc:
        identity("email", raw)
    assert exc.value.field == "email"


def test_social_handles_are_per_provider():
    a = identity("social", "@Ada_L", provider="Instagram")
    assert (a.provider, a.value, a.key) == ("instagram", "ada_l", "social:instagram:ada_l")
    assert identity("social", "ada_l", provider="x").key != a.key


def test_unknown_provider_or_kind_is_refused():
    with pytest.raises(InvalidIdentity) as exc:
        identity("social", "ada", provider="myspace")
    assert exc.value.field == "provider"
    with pytest.raises(InvalidIdentity) as exc:
        identity("fax", "123")
    assert exc.value.field == "kind"


def test_unicode_handles_pass_through():
    assert identity("social", "@Zoë", provider="x").value == "zoë"
