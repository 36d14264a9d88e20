"""Time travel: a customer, a queue and an agent as they stood at a past instant, folded from the event store.

Not a Django app (no models): reads over `events_event` with the same domain
code the live path uses. See history/asof.py and docs/HISTORY.md.
"""
