"""Bounded input: the JSON parser of the API, and the checks every request passes before a view runs.

What is refused here, and why:

- **NUL characters** (`\\u0000`) in a JSON body (keys or values), a query
  string or a path. PostgreSQL's text and jsonb types cannot hold them: a NUL
  that reaches the database is a 500 (`DataError`, or psycopg's "cannot
  contain NUL" ValueError), never a clean answer. DRF's CharField already
  refuses them; JSON fields, dict keys and query parameters did not.
- **Deep nesting** beyond API_MAX_JSON_DEPTH levels. Python's JSON decoder
  recurses once per level and raises RecursionError (a 500) near 1,000; every
  serializer and walker after it recurses too. The depth is measured over the
  decoded text with C-speed string operations, before the decoder runs.
- **Bodies over DATA_UPLOAD_MAX_MEMORY_SIZE**, by their Content-Length, as a
  JSON 413. Under ASGI, contactcenter/asgi.py refuses them while reading; on
  the WSGI path (and Django's test client) Django's own check would end in an
  HTML 400 page, so BoundedInputMiddleware answers first.

Every refusal is a JSON `{"detail", "code", "field"}` body: `field` is the
JSON path of the offending value (`form.sections[0].name`), the query
parameter's name, `path`, or `body` when no narrower place can be named.
"""

from __future__ import annotations

import itertools
import json

from django.conf import settings
from django.http import JsonResponse
from rest_framework import exceptions, parsers
from rest_framework.parsers import get_encoding

NUL = "\x00"
DEFAULT_MAX_DEPTH = 32

# For the depth check: each byte's step (+1 opens, -1 closes), and every byte that is not a bracket.
_STEP = tuple({ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}.get(b, 0) for b in range(256))
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class InputRefused(exceptions.ParseError):
    """Bad input that never reaches a view: 400 (or `status`) with `{"detail", "code", "field"}`.

    A ParseError, so DRF's exception handler renders it wherever it is raised
    (a parser, a view); never a ValueError, so `except ValueError` around a
    JSON decode (the webhooks') does not swallow the field it names.
    """

    def __init__(self, detail: str, *, code: str, field: str, status: int = 400) -> None:
        super().__init__({"detail": detail, "code": code, "field": field}, code)
        self.status_code = status
        self.body = {"detail": detail, "code": code, "field": field}


def max_depth() -> int:
    return int(getattr(settings, "API_MAX_JSON_DEPTH", DEFAULT_MAX_DEPTH))


def check_depth(text: str, limit: int | None = None) -> None:
    """Refuse JSON text nested deeper than `limit` levels, without recursing and before it is decoded.

    Cheap in the common case: fewer opening brackets than the limit cannot
    nest deeper. Otherwise the strings are cut out (a bracket inside one is
    text): once every escaped backslash and escaped quote is gone, the quotes
    left delimit the strings, so the text outside them is every other piece
    between quotes. What is left is reduced to its brackets and the deepest
    running depth taken. All of it is C-level string work, no Python loop per
    character: about as long as decoding the JSON (15 ms for 600 KB here).

    Exact for valid JSON. For malformed text it never under-counts what the
    decoder would recurse through before failing: up to the first character
    that is not valid JSON (an escape outside a string, a closer too many)
    the reading above is exact, and the decoder stops there.
    """
    limit = max_depth() if limit is None else limit
    if text.count("[") + text.count("{") <= limit:
        return
    if "\\" in text:
        text = text.replace("\\\\", "").replace('\\"', "")
    outside = "".join(text.split('"')[::2])
    # UTF-8 never uses bytes below 0x80 inside a multi-byte character: the bracket bytes are the brackets.
    brackets = outside.encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKETS)
    deepest = max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0)
    if deepest > limit:
        raise InputRefused(f"the JSON body is nested more than {limit} levels deep", code="too_deep", field="body")


def _name(key: str) -> str:
    return key.replace(NUL, "\\u0000")


def check_nul(value, path: str = "") -> None:
    """Refuse a NUL character in any key or string of a decoded JSON value, naming its path.

    Iterative (the depth is bounded already, but a walker should not be the
    next thing to recurse). Paths read like the apps' own field errors:
    `from.value`, `form.sections[0].name`; `body` for a bare JSON string.
    """
    stack = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                raise _nul(where or "body")
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{where}.{_name(key)}" if where else _name(key)
                if NUL in key:
                    raise _nul(child_path)
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((f"{where}[{index}]", child) for index, child in enumerate(item))


def _nul(field: str) -> InputRefused:
    return InputRefused("NUL characters (\\u0000) are not allowed", code="nul_character", field=field)


def _parse_error(exc: Exception) -> InputRefused:
    return InputRefused(f"JSON parse error - {exc}", code="parse_error", field="body")


def loads_checked(text: str):
    """Decode JSON text after the depth check, then refuse NULs. Raises json.JSONDecodeError when malformed."""
    check_depth(text)
    # Strict JSON: NaN and Infinity are not JSON (DRF refuses them the same way).
    value = json.loads(text, parse_constant=_refuse_constant)
    # `\u0000` escapes are the only way a NUL gets into a decoded value (a raw NUL byte is a
    # JSON syntax error), so most bodies skip the walk.
    if "\\u0000" in text:
        check_nul(value)
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def safe_json_loads(raw: bytes):
    """`json.loads` for raw request bytes (the signed webhooks), with the API's bounds.

    Like json.loads it detects UTF-8/16/32 and raises ValueError
    (json.JSONDecodeError, UnicodeDecodeError) for malformed input, so an
    existing `except ValueError` keeps working; too deep or NUL-carrying input
    raises InputRefused (a 400 naming the field) instead.
    """
    if isinstance(raw, (bytes, bytearray)):
        raw = bytes(raw).decode(json.detect_encoding(raw), "surrogatepass")
    return loads_checked(raw)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with bounds: depth, NUL characters, and errors as `{"detail", "code", "field"}`.

    A subclass of DRF's, not just a BaseParser: DRF (>= 3.17.2) hands JSON
    parsers the body through `request.body`, which enforces
    DATA_UPLOAD_MAX_MEMORY_SIZE, only when `isinstance(parser, JSONParser)`.
    Any other parser gets the raw stream, unbounded.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})  # refuses non-text codecs (a bz2 "charset" is a zip bomb)
        try:
            text = stream.read().decode(encoding)
        except UnicodeDecodeError as exc:
            raise _parse_error(exc) from None
        try:
            return loads_checked(text)
        except ValueError as exc:
            raise _parse_error(exc) from None


# --- before any view -----------------------------------------------------------------------------------------


def refused_response(exc: InputRefused) -> JsonResponse:
    return JsonResponse(exc.body, status=exc.status_code)


class BoundedInputMiddleware:
    """Refuses what no view should see: a body over the size limit (413), a NUL in the path or query (400).

    Runs before anything reads the body. Cheap: one header compared, and the
    query string decoded only when its raw form carries `%00` (or a NUL).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        refused = self.check(request)
        if refused is not None:
            return refused_response(refused)
        return self.get_response(request)

    @staticmethod
    def check(request) -> InputRefused | None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            # The same body and test as contactcenter/asgi.py's, which refuses it while reading under ASGI.
            return InputRefused(f"the request body is larger than the limit of {limit} bytes", code="too_large",
                                field="body", status=413)
        if NUL in request.path:
            return _nul("path")
        raw = request.META.get("QUERY_STRING", "")
        if "%00" in raw or NUL in raw:
            for name, values in request.GET.lists():
                if NUL in name or any(NUL in value for value in values):
                    return _nul(_name(name))
        return None
