"""Channel provider webhooks: who may call them (HMAC signatures) and turning HTML mail into text.

No database here. The view verifies the signature over the raw request body
before anything is parsed, so what is acted on is exactly what was signed.

Signature: hex HMAC-SHA256, keyed with the provider's secret, of
`X-Timestamp + "." + raw body`; `X-Timestamp` is unix seconds and must be
within WEBHOOK_TIMESTAMP_TOLERANCE seconds (default 300) of our clock, so a
captured request cannot be replayed later. A replay inside that window is
made harmless by the services, not here: each delivery carries its own key
(`provider_message_id`, claimed once in ProviderMessage; a survey answer
counts once), so the copy answers 200 with the original result and changes
nothing (docs/WEBHOOKS.md, "Replays"). Secrets come from the setting
WEBHOOK_SECRETS (a dict provider -> secret) or, when it is not set, from the
environment variable WEBHOOK_SECRETS, formatted `provider=secret,provider2=secret2`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from html.parser import HTMLParser

from django.conf import settings

SIGNATURE_HEADER = "HTTP_X_SIGNATURE"
TIMESTAMP_HEADER = "HTTP_X_TIMESTAMP"
DEFAULT_TOLERANCE = 300
# Largest webhook body accepted, in bytes (below DATA_UPLOAD_MAX_MEMORY_SIZE,
# so that we answer with our own error naming the limit, not Django's).
MAX_BYTES = 256 * 1024


class UnknownProvider(Exception):
    """No secret is configured for this provider (HTTP 404)."""

    status = 404
    code = "unknown_provider"
    field = "provider"


class SignatureRejected(Exception):
    """Missing, wrong or stale signature (HTTP 401). Deliberately vague: tells an attacker nothing."""

    status = 401
    code = "bad_signature"


class BodyTooLarge(Exception):
    status = 413
    code = "too_large"
    field = "body"

    def __init__(self) -> None:
        super().__init__(f"the request body is larger than the limit of {MAX_BYTES} bytes")


def _parse(raw: str) -> dict[str, str]:
    secrets = {}
    for item in raw.split(","):
        provider, sep, secret = item.strip().partition("=")
        if sep and provider.strip() and secret.strip():
            secrets[provider.strip()] = secret.strip()
    return secrets


def secrets() -> dict[str, str]:
    configured = getattr(settings, "WEBHOOK_SECRETS", None)
    if configured is None:
        configured = _parse(os.environ.get("WEBHOOK_SECRETS", ""))
    elif isinstance(configured, str):
        configured = _parse(configured)
    return configured


def tolerance() -> int:
    """Seconds a signed request stays valid either side of our clock (the setting WEBHOOK_TIMESTAMP_TOLERANCE)."""
    value = getattr(settings, "WEBHOOK_TIMESTAMP_TOLERANCE", None)
    if value is None:
        value = os.environ.get("WEBHOOK_TIMESTAMP_TOLERANCE", DEFAULT_TOLERANCE)
    return int(value)


def secret_for(provider: str) -> str:
    secret = secrets().get(provider)
    if not secret:
        raise UnknownProvider(f"unknown provider {provider!r}: no webhook secret is configured for it")
    return secret


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """The hex signature a provider sends in X-Signature."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(*, secret: str, timestamp: str | None, signature: str | None, body: bytes,
           now: float | None = None) -> None:
    """Raise SignatureRejected unless `signature` signs `timestamp.body` and the timestamp is fresh."""
    if not timestamp or not signature:
        raise SignatureRejected("missing X-Signature or X-Timestamp header")
    # Plain ASCII digits only: int() would also take "1_700_000_000", " +17…" or other scripts' digits.
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise SignatureRejected("X-Timestamp must be unix seconds")
    now = time.time() if now is None else now
    window = tolerance()
    if abs(now - int(timestamp)) > window:  # too old (a replay) or too far ahead (signed to be replayed later)
        raise SignatureRejected(f"X-Timestamp is more than {window} seconds away from our clock")
    # compare_digest: constant time, so the comparison leaks nothing of the expected value. Compared as bytes:
    # on str it refuses non-ASCII (a header of "é" would be a 500, not a 401).
    given = signature.strip().lower().encode("utf-8", "replace")
    if not hmac.compare_digest(sign(secret, timestamp, body).encode(), given):
        raise SignatureRejected("the signature does not match")


def signed_payload(request, provider: str) -> dict:
    """The JSON object a provider sent, once its signature checks out: the body's announced and real size
    (413 over MAX_BYTES), then the signature over the raw bytes, and only then parsing (400 naming `payload`).
    What is verified is what is parsed."""
    from contactcenter.parsers import safe_json_loads
    from interactions.domain import InvalidValue

    secret = secret_for(provider)
    announced = request.META.get("CONTENT_LENGTH") or "0"  # refused before the body is read into memory
    if announced.isdigit() and int(announced) > MAX_BYTES:
        raise BodyTooLarge()
    raw = request.body
    if len(raw) > MAX_BYTES:
        raise BodyTooLarge()
    verify(secret=secret, timestamp=request.META.get(TIMESTAMP_HEADER), signature=request.META.get(SIGNATURE_HEADER),
           body=raw)
    try:
        payload = safe_json_loads(raw)  # bounded: nesting depth and NUL characters refused (a 400 naming where)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidValue("payload", f"the body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidValue("payload", "the body must be a JSON object")
    return payload


# --- HTML mail to text -----------------------------------------------------

_BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table",
           "ul", "ol", "hr", "section", "article", "header", "footer"}
_HIDDEN = {"script", "style", "head", "title", "template", "noscript", "iframe", "object", "svg"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag, attrs):
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The readable text of an HTML mail body: tags, scripts, styles and comments dropped, entities decoded.

    We keep text, never HTML, so there is no markup left to sanitise: nothing
    a provider sends can reach an agent's screen as active content.
    """
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()
