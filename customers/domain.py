"""Customer decisions: pure Python, no framework, no database."""

from __future__ import annotations

import re
import uuid
import zoneinfo
from dataclasses import dataclass

from customers.events import (
    CustomerDetailsChanged,
    CustomerErased,
    CustomerMerged,
    CustomerMergedInto,
    CustomerRegistered,
    CustomerUnmerged,
    CustomerUnmergedFrom,
    IdentityLinked,
    ProfileUpdated,
)
from interactions.redact import mask

CHANNELS = ("voice", "chat", "email", "social", "sms")  # as interactions.domain.CHANNELS
VIP_TIERS = ("none", "silver", "gold", "platinum")
DETAIL_FIELDS = ("display_name", "email", "phone", "preferred_channel")
PROFILE_FIELDS = ("language", "contact_hours", "vip_tier", "tags", "notes")
MAX_TAGS, MAX_TAG_LENGTH, MAX_NOTES_LENGTH = 20, 32, 2000


class CustomerError(Exception):
    """A rule of the customer domain said no (HTTP 409 unless stated)."""

    status = 409
    code = "customer_rule"


class CustomerIsErased(CustomerError):
    code = "customer_erased"

    def __init__(self) -> None:
        super().__init__("this customer was erased; their details cannot change")


class NothingToChange(CustomerError):
    status = 400
    code = "nothing_to_change"

    def __init__(self) -> None:
        super().__init__(f"give at least one of {', '.join(DETAIL_FIELDS + PROFILE_FIELDS)}")


class CustomerIsMerged(CustomerError):
    code = "customer_merged"

    def __init__(self, target_id) -> None:
        self.merged_into = target_id
        super().__init__(f"this customer was merged into {target_id} and is read-only; use that one")


class InvalidValue(CustomerError):
    """A value the rules refuse (HTTP 400); `field` names it."""

    status = 400
    code = "invalid_value"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class CustomerState:
    version: int
    erased: bool
    merged_into: uuid.UUID | None = None


def _check_writable(state: CustomerState) -> None:
    if state.erased:
        raise CustomerIsErased()
    if state.merged_into is not None:
        raise CustomerIsMerged(state.merged_into)


# --- profile values ----------------------------------------------------------

# RFC 5646 "langtag" (well-formedness, not registry validity): language,
# script, region, variants, extensions, private use. The primary language
# must be an ISO 639 code (2-3 letters, up to three extlangs): the 4-8
# letter form is reserved and unused, and refusing it catches "english".
# Private-use-only tags ("x-...") and the grandfathered irregular ones are
# not accepted: nobody configures an agent desk with them.
_LANGTAG = re.compile(
    r"""^(?P<language>[a-z]{2,3}(?:-[a-z]{3}){0,3})
    (?:-(?P<script>[a-z]{4}))?
    (?:-(?P<region>[a-z]{2}|[0-9]{3}))?
    (?P<variants>(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*)
    (?P<extensions>(?:-[0-9a-wy-z](?:-[a-z0-9]{2,8})+)*)
    (?P<private>-x(?:-[a-z0-9]{1,8})+)?$""",
    re.VERBOSE,
)
HHMM_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
_HHMM = re.compile(HHMM_PATTERN)


def normalize_language(raw: str) -> str:
    """A well-formed BCP 47 tag in its canonical case (`en-us` -> `en-US`, `zh-hant-tw` -> `zh-Hant-TW`); "" clears."""
    value = raw.strip().replace("_", "-").lower()
    if value == "":
        return ""
    match = _LANGTAG.match(value) if len(value) <= 35 else None
    if match is None:
        raise InvalidValue("language", f"{raw!r} is not a BCP 47 language tag (e.g. en, en-GB, zh-Hant-TW)")
    # Canonical case (RFC 5646 2.1.1): script in title case, region upper case, the rest lower.
    out = [match["language"]]
    if match["script"]:
        out.append(match["script"].title())
    if match["region"]:
        out.append(match["region"].upper())
    return "-".join(out) + match["variants"] + match["extensions"] + (match["private"] or "")


def normalize_contact_hours(raw: dict) -> dict:
    """{"tz": IANA zone, "from": "HH:MM", "to": "HH:MM"}; {} clears. A window over midnight is fine; an empty one is not."""
    if not isinstance(raw, dict):
        raise InvalidValue("contact_hours", 'give an object like {"tz": "Europe/Berlin", "from": "09:00", "to": "17:00"}')
    if not raw:
        return {}
    unknown = set(raw) - {"tz", "from", "to"}
    if unknown:
        raise InvalidValue("contact_hours", f"unknown keys {sorted(unknown)}; known: tz, from, to")
    missing = [k for k in ("tz", "from", "to") if not raw.get(k)]
    if missing:
        raise InvalidValue("contact_hours", f"missing {', '.join(missing)}")
    tz = raw["tz"]
    if not isinstance(tz, str) or tz not in _timezones():
        raise InvalidValue("contact_hours", f"{tz!r} is not an IANA time zone (e.g. Europe/Berlin)")
    for key in ("from", "to"):
        if not isinstance(raw[key], str) or not _HHMM.match(raw[key]):
            raise InvalidValue("contact_hours", f"{key} must be a time HH:MM (00:00-23:59), not {raw[key]!r}")
    if raw["from"] == raw["to"]:
        raise InvalidValue("contact_hours", "from and to are the same: the window is empty")
    return {"tz": tz, "from": raw["from"], "to": raw["to"]}


_TZ_CACHE: set[str] = set()


def _timezones() -> set[str]:
    if not _TZ_CACHE:
        _TZ_CACHE.update(zoneinfo.available_timezones())
    return _TZ_CACHE


def normalize_tags(raw: list) -> list[str]:
    """Short labels, trimmed and lower-cased, duplicates dropped, order kept; [] clears."""
    if not isinstance(raw, (list, tuple)):
        raise InvalidValue("tags", "give a list of short strings")
    tags: list[str] = []
    for tag in raw:
        if not isinstance(tag, str) or not tag.strip():
            raise InvalidValue("tags", f"{tag!r} is not a tag: give non-empty strings")
        tag = tag.strip().lower()
        if len(tag) > MAX_TAG_LENGTH:
            raise InvalidValue("tags", f"{tag!r} is longer than {MAX_TAG_LENGTH} characters")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise InvalidValue("tags", f"at most {MAX_TAGS} tags")
    return tags


def normalize_profile(*, language=None, contact_hours=None, vip_tier=None, tags=None, notes=None) -> dict:
    """The profile changes given (None: unchanged), validated and normalised; raises InvalidValue naming the field."""
    out: dict = {}
    if language is not None:
        out["language"] = normalize_language(language)
    if contact_hours is not None:
        out["contact_hours"] = normalize_contact_hours(contact_hours)
    if vip_tier is not None:
        if vip_tier not in VIP_TIERS:
            raise InvalidValue("vip_tier", f"{vip_tier!r} is not a VIP tier; known: {', '.join(VIP_TIERS)}")
        out["vip_tier"] = vip_tier
    if tags is not None:
        out["tags"] = normalize_tags(tags)
    if notes is not None:
        if len(notes) > MAX_NOTES_LENGTH:
            raise InvalidValue("notes", f"notes are limited to {MAX_NOTES_LENGTH} characters")
        out["notes"] = _masked(notes)  # card numbers and security codes never reach an event (interactions.redact)
    return out


class IdentityTaken(CustomerError):
    code = "identity_taken"

    def __init__(self, field: str, customer_id) -> None:
        # Which customer is not said: the caller may not be allowed to see them (docs/SECURITY.md, 404 not 403);
        # an admin finds them in the directory.
        self.field, self.customer_id = field, customer_id
        super().__init__(f"this {field} already belongs to another customer")


def _masked(text: str | None) -> str | None:
    """Free text as it may be stored: card numbers, security codes and national ids masked (interactions.redact)."""
    return mask(text)[0] if text else text


def _masked_name(display_name: str | None, *identities: str | None) -> str | None:
    # A customer first known by a phone number or an address is named by it (customers.services.customer_resolve):
    # that is their identity, kept (encrypted) as such, not free text to mask. Any other name is typed by someone.
    return display_name if display_name and display_name in identities else _masked(display_name)


def decide_register(*, display_name: str, email: str | None, phone: str | None, preferred_channel: str,
                    identities=()):
    """Registration, and a link for each identity (already normalised) that now leads to the customer. A card
    number or security code typed into the name is masked, as in every stored text."""
    display_name = _masked_name(display_name, email, phone)
    return [CustomerRegistered(display_name=display_name, email=email, phone=phone, preferred_channel=preferred_channel)] + [
        IdentityLinked(kind=i.kind, value=i.value, provider=i.provider) for i in identities
    ]


def decide_change_details(state: CustomerState, *, identities=(), **changes) -> list:
    """Contact details (CustomerDetailsChanged), profile (ProfileUpdated), and a link per new identity.

    `identities` are the normalised email/phone given that do not lead to
    this customer yet (the service knows which). Fields that are None did
    not change; at least one must be given.
    """
    _check_writable(state)
    details = {k: v for k in DETAIL_FIELDS if (v := changes.pop(k, None)) is not None}
    if "display_name" in details:
        details["display_name"] = _masked_name(details["display_name"], details.get("email"), details.get("phone"))
    profile = normalize_profile(**{k: changes.pop(k, None) for k in PROFILE_FIELDS})
    if changes:
        raise TypeError(f"unknown fields {sorted(changes)}")
    if not details and not profile:
        raise NothingToChange()
    return (
        ([CustomerDetailsChanged(**details)] if details else [])
        + ([ProfileUpdated(**profile)] if profile else [])
        + [IdentityLinked(kind=i.kind, value=i.value, provider=i.provider) for i in identities]
    )


def decide_merge(target: CustomerState, source: CustomerState, *, target_id: uuid.UUID, source_id: uuid.UUID,
                 identities_moved: int, identity_hashes: list[str] = ()) -> tuple[list, list]:
    """Merge the duplicate `source` into `target`: (events for the target, events for the source).

    Refused into itself (400), into or from an erased customer, into or from
    one already merged (409). Not idempotent: merging again is refused,
    since the source is merged by then.
    """
    if target_id == source_id:
        raise InvalidValue("source_id", "a customer cannot be merged into itself")
    _check_writable(target)
    _check_writable(source)
    return ([CustomerMerged(source_id=source_id, identities_moved=identities_moved,
                            identity_hashes=sorted(identity_hashes))],
            [CustomerMergedInto(target_id=target_id)])


class NotMergedInto(CustomerError):
    code = "not_merged"

    def __init__(self, source_id, target_id) -> None:
        super().__init__(f"customer {source_id} is not merged into {target_id} (directly): there is nothing to undo")


def decide_unmerge(target: CustomerState, source: CustomerState, *, target_id: uuid.UUID, source_id: uuid.UUID,
                   identities_returned: int, interactions_returned: list) -> tuple[list, list]:
    """Undo the merge of `source` into `target`: (events for the target, events for the source).

    Only a merge that stands, directly (the source's merged_into is the
    target), is undone: otherwise NotMergedInto (409). An erased side is
    refused (409): its history is unreadable, there is nothing to restore.
    A target merged on into a third customer since is fine: the source
    leaves the chain at the target. Not idempotent: a second unmerge is
    refused, since the source is not merged by then.
    """
    if target_id == source_id:
        raise InvalidValue("source_id", "a customer is never merged into itself")
    if target.erased or source.erased:
        raise CustomerIsErased()
    if source.merged_into != target_id:
        raise NotMergedInto(source_id, target_id)
    return ([CustomerUnmerged(source_id=source_id, identities_returned=identities_returned,
                              interactions_returned=sorted(str(i) for i in interactions_returned))],
            [CustomerUnmergedFrom(target_id=target_id)])


def decide_erase(state: CustomerState, *, reason: str) -> list:
    """Erasing twice is not an error: the second time decides nothing."""
    return [] if state.erased else [CustomerErased(reason=_masked(reason))]
