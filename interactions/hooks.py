"""Who else keeps state in step with an interaction's lifecycle, in the same transaction.

Routing counts agents' capacity from its own rows (routing.models.Work);
they must never lag the interaction's state, or two workers could fill the
same slot. So every service that changes an interaction's state row calls
`changed(row, events)` (or `changed_many`) before its transaction commits, and routing listens
(registered in RoutingConfig.ready). Interactions does not import routing.
"""

from __future__ import annotations

from collections.abc import Callable

_listeners: list[Callable] = []
_annotators: list[Callable] = []


def listen(fn: Callable) -> Callable:
    """Register fn(row, new_events); called inside the transaction that changed `row`."""
    if fn not in _listeners:
        _listeners.append(fn)
    return fn


def annotator(fn: Callable) -> Callable:
    """Register fn(row, new_events) -> more events, recorded on the interaction's stream in the same append
    (conversation intelligence scores each inbound message). Called inside the transaction, row locked."""
    if fn not in _annotators:
        _annotators.append(fn)
    return fn


def annotate(row, new_events: list) -> list:
    """`new_events` and what the annotators add to them."""
    extra = [e for fn in _annotators for e in fn(row, new_events)]
    return [*new_events, *extra] if extra else new_events


def changed(row, new_events: list) -> None:
    for fn in _listeners:
        fn(row, new_events)


def changed_many(changes: list[tuple]) -> None:
    """`changed` for several rows at once: a listener with a `many` attribute gets them all in one call."""
    for fn in _listeners:
        many = getattr(fn, "many", None)
        if many is not None:
            many(changes)
        else:
            for row, new_events in changes:
                fn(row, new_events)
