"""The event-type registry: every event type is declared once, here-through.

An event type is a frozen dataclass decorated with `@event(name, version=N)`.
The registry refuses duplicate names, knows each type's current schema
version, upcasts stored payloads of older versions on read
(`upcast_v1_v2`, `upcast_v2_v3`, ... static methods on the class), and
knows which fields hold personal data (`pii()` fields), which the store
encrypts with the customer's key.

Stored events are never rewritten: old versions stay as they were written
and are upcast every time they are read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import functools
import typing
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

PII = "pii"


def pii(**kwargs: Any) -> Any:
    """A dataclass field that holds personal data (encrypted with the customer's key)."""
    metadata = dict(kwargs.pop("metadata", {}) or {}, **{PII: True})
    return field(metadata=metadata, **kwargs)


class UnknownEventType(LookupError):
    pass


class InvalidEventData(ValueError):
    pass


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    cls: type
    emitted_by: str
    description: str

    @functools.cached_property
    def pii_fields(self) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(self.cls) if f.metadata.get(PII))

    def upcasters(self) -> list[tuple[int, Callable[[dict], dict]]]:
        return [(v, getattr(self.cls, f"upcast_v{v}_v{v + 1}")) for v in range(1, self.version)]


_REGISTRY: dict[str, EventType] = {}
_BY_CLASS: dict[type, EventType] = {}


def event(name: str, *, version: int = 1, emitted_by: str = "") -> Callable[[type], type]:
    """Register a frozen dataclass as the event type `name` at schema `version`."""

    def register(cls: type) -> type:
        if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:
            raise TypeError(f"{cls.__name__} must be a frozen dataclass")
        if name in _REGISTRY and _REGISTRY[name].cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"event type {name!r} is already registered by {_REGISTRY[name].cls!r}")
        for v in range(1, version):
            if not callable(getattr(cls, f"upcast_v{v}_v{v + 1}", None)):
                raise TypeError(f"{name} v{version} needs a static method upcast_v{v}_v{v + 1}")
        doc = (cls.__doc__ or "").strip()
        et = EventType(name=name, version=version, cls=cls, emitted_by=emitted_by, description=doc)
        _REGISTRY[name] = et
        _BY_CLASS[cls] = et
        cls.event_type = name
        cls.schema_version = version
        return cls

    return register


def event_type(name: str) -> EventType:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownEventType(name) from None


def type_of(instance_or_cls: Any) -> EventType:
    cls = instance_or_cls if isinstance(instance_or_cls, type) else type(instance_or_cls)
    try:
        return _BY_CLASS[cls]
    except KeyError:
        raise UnknownEventType(cls.__name__) from None


def all_types() -> list[EventType]:
    return sorted(_REGISTRY.values(), key=lambda et: et.name)


# --- (de)serialisation -----------------------------------------------------


_PLAIN = (str, int, float, bool, type(None))


def _to_json(value: Any) -> Any:
    if type(value) in _PLAIN:
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    return value


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def to_data(instance: Any) -> dict:
    """The JSON payload of an event instance (plain values, personal data still clear)."""
    return {name: _to_json(getattr(instance, name)) for name in _field_names(type(instance))}


def _coerce(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(args[0], value) if len(args) == 1 else value
    if tp is uuid.UUID and not isinstance(value, uuid.UUID):
        return uuid.UUID(str(value))
    if tp is dt.datetime and isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    if tp is decimal.Decimal and not isinstance(value, decimal.Decimal):
        return decimal.Decimal(str(value))
    return value


def upcast(name: str, version: int, data: dict) -> dict:
    """Bring a stored payload of `version` up to the type's current version."""
    et = event_type(name)
    if version == et.version:
        return data
    for v, upcaster in et.upcasters():
        if v >= version:
            data = upcaster(dict(data))
    return data


@functools.cache
def _fields_of(cls: type) -> tuple[dict, frozenset]:
    return typing.get_type_hints(cls), frozenset(f.name for f in dataclasses.fields(cls))


def from_data(name: str, data: dict) -> Any:
    """Build the event instance from a current-version payload; unknown fields are rejected."""
    et = event_type(name)
    hints, names = _fields_of(et.cls)
    unknown = set(data) - names
    if unknown:
        raise InvalidEventData(f"{name}: unknown fields {sorted(unknown)}")
    try:
        return et.cls(**{k: _coerce(hints.get(k), v) for k, v in data.items()})
    except (TypeError, ValueError) as exc:
        raise InvalidEventData(f"{name}: {exc}") from exc
