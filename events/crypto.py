"""Crypto-shredding: personal data in event payloads, encrypted per customer.

Each customer gets a random 256-bit data key (AES-GCM, from `cryptography`),
stored wrapped by a key-encryption key derived from settings. A personal
field is stored as {"$pii": base64(nonce + ciphertext)} with the customer id
as associated data, so a ciphertext cannot be moved to another customer.

A stream may have a key of its own (events.models.StreamKey: an interaction
that came in through an identity a merge moved, which an unmerge may give
to another customer). Its fields are stored as {"$pii": …, "k": key id},
with the key id as associated data, and its key is destroyed with whichever
customer owns the stream when they are erased.
Destroying the key erases the person everywhere the field is read, including
projections rebuilt later, without rewriting a single stored event.

Keys are looked up per call (a `KeyRing` lives for one batch), never cached
for the life of a process: an erasure must take effect in every process at
once.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterable
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import connection

ERASED = "[erased]"
MARK = "$pii"


class CustomerErased(Exception):
    """Personal data cannot be written for a customer whose key was destroyed."""


@lru_cache(maxsize=4)
def _kek(secret: str) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"contactcenter-kek", info=b"event-data-keys").derive(
        secret.encode()
    )
    return AESGCM(key)


def kek() -> AESGCM:
    return _kek(settings.EVENT_KEK or settings.SECRET_KEY)


def _unwrap(customer_id: uuid.UUID, wrapped: bytes) -> AESGCM:
    wrapped = bytes(wrapped)
    return AESGCM(kek().decrypt(wrapped[:12], wrapped[12:], customer_id.bytes))


def _wrap(customer_id: uuid.UUID, key: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + kek().encrypt(nonce, key, customer_id.bytes)


class KeyRing:
    """Data keys for a set of customers, loaded with one query."""

    def __init__(self, keys: dict[uuid.UUID, AESGCM | None]):
        self._keys = keys

    @classmethod
    def load(cls, customer_ids: Iterable[uuid.UUID | None]) -> KeyRing:
        ids = list({c for c in customer_ids if c is not None})
        keys: dict[uuid.UUID, AESGCM | None] = {}
        if ids:
            with connection.cursor() as cur:
                cur.execute(
                    "SELECT customer_id, wrapped_key FROM events_customer_key WHERE customer_id = ANY(%s)", [ids]
                )
                for cid, wrapped in cur.fetchall():
                    keys[cid] = _unwrap(cid, wrapped) if wrapped is not None else None
        return cls(keys)

    @classmethod
    def for_writing(cls, customer_id: uuid.UUID, stream_id: uuid.UUID | None = None) -> tuple[AESGCM, uuid.UUID]:
        """The key personal data of `stream_id` is written under, and its id: the stream's own key
        (events.models.StreamKey) if it has one, else the customer's; created on first use. Refuses an erased
        one (CustomerErased)."""
        # One statement in the common case (the key exists): which key, and the key itself.
        with connection.cursor() as cur:
            cur.execute(
                "SELECT x.id, k.customer_id IS NOT NULL, k.wrapped_key FROM (SELECT coalesce("
                "(SELECT key_id FROM events_stream_key WHERE stream_id = %s), %s::uuid) AS id) x "
                "LEFT JOIN events_customer_key k ON k.customer_id = x.id", [stream_id, customer_id])
            key_id, exists, wrapped = cur.fetchone()
            if not exists:
                cur.execute(
                    "INSERT INTO events_customer_key (customer_id, wrapped_key, created_at) VALUES (%s, %s, now()) "
                    "ON CONFLICT (customer_id) DO NOTHING",
                    [key_id, _wrap(key_id, AESGCM.generate_key(bit_length=256))],
                )
                # A racing writer may have created it first: read what won.
                cur.execute("SELECT wrapped_key FROM events_customer_key WHERE customer_id = %s", [key_id])
                (wrapped,) = cur.fetchone()
        if wrapped is None:
            raise CustomerErased(str(key_id))
        return _unwrap(key_id, wrapped), key_id

    def key(self, customer_id: uuid.UUID) -> AESGCM | None:
        """The customer's data key; None when it was destroyed or not loaded."""
        return self._keys.get(customer_id)

    def stream_key(self, key_id: uuid.UUID) -> AESGCM | None:
        """A stream's own key (loaded on first use: few streams have one); None when destroyed."""
        if key_id not in self._keys:
            self._keys.update(KeyRing.load([key_id])._keys)
            self._keys.setdefault(key_id, None)
        return self._keys[key_id]

    def decrypt_data(self, customer_id: uuid.UUID | None, data: dict) -> dict:
        if customer_id is None or not any(isinstance(v, dict) and MARK in v for v in data.values()):
            return data
        key = self._keys.get(customer_id)
        out = {}
        for name, value in data.items():
            if isinstance(value, dict) and MARK in value:
                if "k" in value:  # the stream's own key
                    kid = uuid.UUID(value["k"])
                    own = self.stream_key(kid)
                    out[name] = decrypt_value(own, kid, value) if own is not None else ERASED
                else:
                    out[name] = decrypt_value(key, customer_id, value) if key is not None else ERASED
            else:
                out[name] = value
        return out


def encrypt_value(key: AESGCM, customer_id: uuid.UUID, value, *, stream_key: bool = False) -> dict:
    """`customer_id`: the associated data (the key's id); `stream_key`: it is a stream's own key, so the
    value names it (`"k"`) for the reader."""
    nonce = os.urandom(12)
    blob = nonce + key.encrypt(nonce, json.dumps(value).encode(), customer_id.bytes)
    out = {MARK: base64.b64encode(blob).decode()}
    if stream_key:
        out["k"] = str(customer_id)
    return out


def decrypt_value(key: AESGCM, customer_id: uuid.UUID, value: dict):
    blob = base64.b64decode(value[MARK])
    return json.loads(key.decrypt(blob[:12], blob[12:], customer_id.bytes))


def destroy_key(customer_id: uuid.UUID) -> bool:
    """Destroy the customer's data key. Returns False if it was already destroyed."""
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO events_customer_key (customer_id, wrapped_key, created_at, erased_at) "
            "VALUES (%s, NULL, now(), now()) "
            "ON CONFLICT (customer_id) DO UPDATE SET wrapped_key = NULL, erased_at = now() "
            "WHERE events_customer_key.wrapped_key IS NOT NULL "
            "RETURNING customer_id",
            [customer_id],
        )
        return cur.fetchone() is not None


# --- streams with a key of their own (events.models.StreamKey) ---------------------------------------------------


def stream_key_give(stream_id: uuid.UUID, owner_id: uuid.UUID) -> uuid.UUID:
    """Give the stream a key of its own, owned by `owner_id` (idempotent: the key it has). Call it before the
    stream's first event, or its earlier events stay under the customer's key."""
    with connection.cursor() as cur:
        cur.execute("INSERT INTO events_stream_key (stream_id, key_id, owner_id, created_at) "
                    "VALUES (%s, %s, %s, now()) ON CONFLICT (stream_id) DO NOTHING",
                    [stream_id, uuid.uuid4(), owner_id])
        cur.execute("SELECT key_id FROM events_stream_key WHERE stream_id = %s", [stream_id])
        return cur.fetchone()[0]


def stream_keys_give_to(stream_ids: Iterable[uuid.UUID], owner_id: uuid.UUID) -> int:
    """These streams' own keys now belong to `owner_id` (an unmerge gave the streams back)."""
    with connection.cursor() as cur:
        cur.execute("UPDATE events_stream_key SET owner_id = %s WHERE stream_id = ANY(%s)",
                    [owner_id, list(stream_ids)])
        return cur.rowcount


def stream_keys_destroy(owner_id: uuid.UUID) -> list[uuid.UUID]:
    """Destroy the keys of the streams `owner_id` owns (their erasure); those streams' ids."""
    with connection.cursor() as cur:
        cur.execute("SELECT stream_id, key_id FROM events_stream_key WHERE owner_id = %s", [owner_id])
        rows = cur.fetchall()
    for _, key_id in rows:
        destroy_key(key_id)
    return [stream_id for stream_id, _ in rows]
