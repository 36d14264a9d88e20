"""Customer identities, normalised so that one person matches across channels.

Pure functions, no database: a touch on any channel carries an identity (a
phone number, an email address, a social handle); normalising it the same
way everywhere is what lets a chat today and a call tomorrow land on the
same customer.

- phone: E.164 (`+14155550123`), parsed with `phonenumbers` (Google's
  libphonenumber rules); numbers without a country code are read in the
  default region (settings.DEFAULT_PHONE_REGION).
- email: trimmed and lower-cased (providers treat the local part
  case-insensitively in practice, and a customer types it both ways).
- social: per provider, the handle without a leading "@", lower-cased.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

PHONE, EMAIL, SOCIAL = "phone", "email", "social"
KINDS = (PHONE, EMAIL, SOCIAL)
SOCIAL_PROVIDERS = ("facebook", "instagram", "x", "whatsapp", "linkedin", "tiktok")

# Deliberately simple: one "@", no spaces, a dot in the domain. Deliverability
# is the mail server's business; this only keeps obvious garbage out.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HANDLE = re.compile(r"^[\w.\-]{1,100}$")


class InvalidIdentity(ValueError):
    """An identity that cannot be normalised (HTTP 400); `field` names what was wrong."""

    status = 400
    code = "invalid_identity"

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Identity:
    kind: str
    value: str  # normalised
    provider: str = ""  # social network, for kind == "social"

    @property
    def key(self) -> str:
        """One string per identity, unique across kinds and providers."""
        return f"{self.kind}:{self.provider}:{self.value}" if self.provider else f"{self.kind}:{self.value}"


def normalize_phone(raw: str, *, default_region: str = "US") -> str:
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidIdentity("phone", f"{raw!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentity("phone", f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    value = raw.strip().lower()
    if not _EMAIL.match(value) or len(value) > 254:
        raise InvalidIdentity("email", f"{raw!r} is not an email address")
    return value


def normalize_social(provider: str, handle: str) -> tuple[str, str]:
    provider = provider.strip().lower()
    if provider not in SOCIAL_PROVIDERS:
        raise InvalidIdentity("provider", f"unknown social provider {provider!r}; known: {', '.join(SOCIAL_PROVIDERS)}")
    value = handle.strip().removeprefix("@").lower()
    if not _HANDLE.match(value):
        raise InvalidIdentity("handle", f"{handle!r} is not a {provider} handle")
    return provider, value


def identity(kind: str, value: str, *, provider: str = "", default_region: str = "US") -> Identity:
    """Normalise one identity; raises InvalidIdentity naming the bad field."""
    if kind == PHONE:
        return Identity(PHONE, normalize_phone(value, default_region=default_region))
    if kind == EMAIL:
        return Identity(EMAIL, normalize_email(value))
    if kind == SOCIAL:
        provider, handle = normalize_social(provider, value)
        return Identity(SOCIAL, handle, provider)
    raise InvalidIdentity("kind", f"unknown identity kind {kind!r}; known: {', '.join(KINDS)}")
