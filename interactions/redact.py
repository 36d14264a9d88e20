"""Personal data masked out of free text before it becomes an event (pure Python).

Customers type card numbers into chats and read them out on calls; agents
paste them into notes. None of it may reach the event store, Kafka or a
read model, so every text an interaction records (message bodies and
subjects, transcript segments, transfer and wrap-up notes) goes through
`mask` first, and only the masked text is stored:

- a card number: 13-19 digits, spaces or dashes allowed between them, that
  pass the Luhn check -> ``[card ****1234]`` (the last four, as on a receipt).
  Digit runs that fail the check (order numbers, phone numbers) stay;
- a card security code: 3-4 digits within a few words after a card number,
  or after "CVV", "CVC", "CVV2", "CSC" or "security code" -> ``[cvv]``;
- a national id: a US social security number (123-45-6789) or a UK National
  Insurance number (QQ 12 34 56 C) -> ``[national id]``.
"""

from __future__ import annotations

import re

CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# Up to four words (or an expiry date) between the card number and the code: "exp 12/27 cvv 123", ", 123".
CVV_AFTER_CARD = re.compile(r"(\W{0,6}(?:(?:[^\W\d]+|\d{1,2}/\d{2,4})\W{1,4}){0,4}?)(\d{3,4})(?![\d/])")
CVV_LABELLED = re.compile(r"\b(cvv2?|cvc2?|csc|security\s+code)(\W{0,6}(?:(?:is|was|number|no)\W{1,4})?)(\d{3,4})"
                          r"(?!\d)", re.IGNORECASE)
SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")
NINO = re.compile(r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
                  re.IGNORECASE)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def mask(text: str) -> tuple[str, tuple[str, ...]]:
    """`text` with card numbers, security codes and national ids masked, and the kinds found."""
    if not text or not any(ch.isdigit() for ch in text):
        return text, ()
    found: list[str] = []
    out, last = [], 0
    for m in CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if not luhn_valid(digits):
            continue
        out.append(text[last:m.start()])
        out.append(f"[card ****{digits[-4:]}]")
        found.append("card")
        last = m.end()
        after = CVV_AFTER_CARD.match(text, last)
        if after:
            out.append(after.group(1) + "[cvv]")
            found.append("cvv")
            last = after.end()
    out.append(text[last:])
    text = "".join(out)
    text, n = CVV_LABELLED.subn(lambda m: f"{m.group(1)}{m.group(2)}[cvv]", text)
    found += ["cvv"] * n
    for pattern in (SSN, NINO):
        text, n = pattern.subn("[national id]", text)
        found += ["national_id"] * n
    return text, tuple(dict.fromkeys(found))
