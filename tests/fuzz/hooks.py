"""Schemathesis hooks and a check of our own (loaded by tests/fuzz/schemathesis.toml; no Django here, the CLI runs
in a process of its own).

A fresh Idempotency-Key for every call that carries a usable one. The fuzzer draws small keys ("0", "A") again and
again for different bodies, and the API rightly refuses a key reused for another request (422
`idempotency_key_reused`): left alone, most commands would never get past that check to their own logic. A key the
API must refuse (too long, not printable ASCII) is sent as drawn, so those refusals stay tested.
"""

import re
import uuid

import schemathesis

HEADER = "Idempotency-Key"
USABLE = re.compile(r"^[ -~]*[!-~][ -~]*$")  # contactcenter.idempotency.KEY_PATTERN


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    key = headers.get(HEADER)
    if isinstance(key, str) and len(key) <= 200 and USABLE.match(key):
        headers[HEADER] = f"{key}-{uuid.uuid4().hex}"


@schemathesis.check
def valid_data_passes_field_validation(ctx, response, case):
    """Data the schema calls valid must not be refused field by field (a 400 `FieldErrors`, DRF's validation):
    that is the schema promising less than the serializer checks. A 400 `Error` ({"detail", "code", "field"}) is a
    rule of the domain about what the data names (no such queue, not a phone number), which no schema can know, and
    passes, as does every other documented status."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str) and isinstance(body.get("code"), str):
        return None
    raise AssertionError(f"Valid data was refused field by field: the schema allows what the serializer does not\n"
                         f"{response.text[:2000]}")
