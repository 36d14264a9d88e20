"""Card numbers, security codes and national ids are masked out of free text (interactions.redact)."""

import pytest

from interactions.redact import luhn_valid, mask


@pytest.mark.parametrize("text, expected, kinds", [
    ("my card is 4111 1111 1111 1111 thanks", "my card is [card ****1111] thanks", ("card",)),
    ("4111-1111-1111-1111", "[card ****1111]", ("card",)),
    ("card 4111111111111111 exp 12/27 cvv 123 ok", "card [card ****1111] exp 12/27 cvv [cvv] ok", ("card", "cvv")),
    ("5500 0000 0000 0004, 987", "[card ****0004], [cvv]", ("card", "cvv")),
    ("the code on the back: CVC 4321", "the code on the back: CVC [cvv]", ("cvv",)),
    ("security code is 555", "security code is [cvv]", ("cvv",)),
    ("SSN 123-45-6789 please", "SSN [national id] please", ("national_id",)),
    ("NI number AB 12 34 56 C", "NI number [national id]", ("national_id",)),
    # Not personal data: digit runs failing Luhn, phone numbers, order numbers, amounts, dates.
    ("order 4111 1111 1111 1112 is late", "order 4111 1111 1111 1112 is late", ()),
    ("call me on +44 20 7946 0001", "call me on +44 20 7946 0001", ()),
    ("refund of 123.45 on 12/10", "refund of 123.45 on 12/10", ()),
    ("", "", ()),
])
def test_mask(text, expected, kinds):
    assert mask(text) == (expected, kinds)


def test_luhn():
    assert luhn_valid("4111111111111111") and luhn_valid("378282246310005")  # Visa and Amex test numbers
    assert not luhn_valid("4111111111111112")
