"""Schemathesis hooks for our API (loaded by tests/fuzz/schemathesis.toml; no Django here, the CLI runs apart).

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
