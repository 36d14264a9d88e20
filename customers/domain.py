"""Customer decisions: pure Python, no framework, no database."""

from __future__ import annotations

from dataclasses import dataclass

from customers.events import CustomerDetailsChanged, CustomerErased, CustomerRegistered, IdentityLinked

CHANNELS = ("phone", "chat", "email", "social", "sms")


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
        super().__init__("give at least one of display_name, email, phone, preferred_channel")


@dataclass(frozen=True)
class CustomerState:
    version: int
    erased: bool


class IdentityTaken(CustomerError):
    code = "identity_taken"

    def __init__(self, field: str, customer_id) -> None:
        self.field = field
        super().__init__(f"this {field} already belongs to customer {customer_id}")


def decide_register(*, display_name: str, email: str | None, phone: str | None, preferred_channel: str,
                    identities=()):
    """Registration, and a link for each identity (already normalised) that now leads to the customer."""
    return [CustomerRegistered(display_name=display_name, email=email, phone=phone, preferred_channel=preferred_channel)] + [
        IdentityLinked(kind=i.kind, value=i.value, provider=i.provider) for i in identities
    ]


def decide_change_details(state: CustomerState, **changes) -> list:
    if state.erased:
        raise CustomerIsErased()
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        raise NothingToChange()
    return [CustomerDetailsChanged(**changes)]


def decide_erase(state: CustomerState, *, reason: str) -> list:
    """Erasing twice is not an error: the second time decides nothing."""
    return [] if state.erased else [CustomerErased(reason=reason)]
