"""Events of the customer stream (stream_type "customer", stream_id = customer id)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from events.registry import event, pii


def _voice(data: dict) -> dict:
    # Until v3 (v2 of CustomerDetailsChanged) a preference for calls was named
    # "phone"; it is "voice", as on interactions.
    if data.get("preferred_channel") == "phone":
        data["preferred_channel"] = "voice"
    return data


@event("customers.CustomerRegistered", version=3, emitted_by="customers.services.customer_register")
@dataclass(frozen=True)
class CustomerRegistered:
    """A customer became known to the contact center."""

    display_name: str = pii()
    email: str | None = pii(default=None)
    phone: str | None = pii(default=None)
    preferred_channel: str = ""

    @staticmethod
    def upcast_v1_v2(data: dict) -> dict:
        # v1 had a single `name` and no phone or channel preference.
        data["display_name"] = data.pop("name")
        data.setdefault("phone", None)
        data.setdefault("preferred_channel", "")
        return data

    @staticmethod
    def upcast_v2_v3(data: dict) -> dict:
        return _voice(data)


@event("customers.CustomerDetailsChanged", version=2, emitted_by="customers.services.customer_change_details")
@dataclass(frozen=True)
class CustomerDetailsChanged:
    """Contact details changed; a field that is null did not change."""

    display_name: str | None = pii(default=None)
    email: str | None = pii(default=None)
    phone: str | None = pii(default=None)
    preferred_channel: str | None = None

    @staticmethod
    def upcast_v1_v2(data: dict) -> dict:
        return _voice(data)


@event("customers.CustomerErased", version=1, emitted_by="customers.services.customer_erase")
@dataclass(frozen=True)
class CustomerErased:
    """The customer's data key was destroyed: personal data in every event of theirs reads as erased."""

    reason: str = ""


@event("customers.IdentityLinked", version=1, emitted_by="customers.services.customer_resolve")
@dataclass(frozen=True)
class IdentityLinked:
    """A phone number, email address or social handle now leads to this customer."""

    kind: str
    value: str = pii()
    provider: str = ""


@event("customers.ProfileUpdated", version=1, emitted_by="customers.services.customer_change_details")
@dataclass(frozen=True)
class ProfileUpdated:
    """Preferences and segmentation changed; a field that is null did not change.

    `language` is a BCP 47 tag in canonical case ("" clears it); `contact_hours`
    is {"tz", "from", "to"} ({} clears it; "from" after "to" is a window over
    midnight); `tags` replaces the whole list; `notes` are free text and may
    hold personal data (encrypted, scrubbed on erasure).
    """

    language: str | None = None
    contact_hours: dict | None = None
    vip_tier: str | None = None
    tags: list | None = None
    notes: str | None = pii(default=None)


@event("customers.CustomerMerged", version=1, emitted_by="customers.services.customer_merge")
@dataclass(frozen=True)
class CustomerMerged:
    """Another customer (a duplicate) was merged into this one: its identities now lead here."""

    source_id: uuid.UUID
    identities_moved: int = 0
    # The keyed hashes (customers.services.identity_hash) of the identities that moved, so an unmerge can give
    # back exactly these. Events recorded before it existed load with []: the unmerge then finds them from the
    # source's IdentityLinked events. Encrypted like personal data: erasing the customer makes them unreadable.
    identity_hashes: list = pii(default_factory=list)


@event("customers.CustomerMergedInto", version=1, emitted_by="customers.services.customer_merge")
@dataclass(frozen=True)
class CustomerMergedInto:
    """This customer was a duplicate of `target_id` and is read-only from now on.

    Its timeline shows on the target's; commands on it are refused.
    """

    target_id: uuid.UUID


@event("customers.CustomerUnmerged", version=1, emitted_by="customers.services.customer_unmerge")
@dataclass(frozen=True)
class CustomerUnmerged:
    """A merge into this customer was undone: `source_id` is its own customer again.

    `identities_returned` identities lead to the source again. `interactions_returned` are the touches that
    arrived after the merge through one of those identities: they belong to the source's timeline from now on
    (their events keep naming this customer; the timeline projection maps them).
    """

    source_id: uuid.UUID
    identities_returned: int = 0
    interactions_returned: list = field(default_factory=list)


@event("customers.CustomerUnmergedFrom", version=1, emitted_by="customers.services.customer_unmerge")
@dataclass(frozen=True)
class CustomerUnmergedFrom:
    """The merge of this customer into `target_id` was undone: it is writable again, with its own timeline."""

    target_id: uuid.UUID
