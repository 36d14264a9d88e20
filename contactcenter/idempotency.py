"""Idempotent commands: `Idempotency-Key` on any POST of the authenticated API.

A client that retries a command with the same key (same user, within
IDEMPOTENCY_TTL_SECONDS, 24 hours by default) gets the stored answer (same
status, same body, plus `Idempotent-Replayed: true`) and the command does not
run again. The key is the user's own: another user's same key is another key.

How (and why this way rather than claim-then-run)
--------------------------------------------------

The key's row (contactcenter.models.IdempotentRequest) is inserted **in the
same database transaction as the command's effects**, and the stored answer
is written into it before that transaction commits:

    BEGIN
      INSERT key row (in a savepoint)   -- a concurrent retry waits here, on the unique index
      run the view                      -- the services' atomic blocks become savepoints
      UPDATE key row SET answer         -- 2xx/3xx
    COMMIT                              -- effects and answer become visible together

- A concurrent retry's INSERT blocks on the unique (user_id, key) index until
  the first try ends. If the first committed, the insert fails and the retry
  reads the committed answer; if it rolled back, the insert succeeds and the
  retry runs the command itself. The command never runs twice, and nobody
  ever sees a key without its answer, so there is no "in progress" state to
  poll, no 409 to retry, and no stale claim to clean up after a crash (a
  dead process's transaction rolls back with its claim).
- A failed first try leaves no key behind, so the retry runs fresh: on a 5xx
  (or an exception) the whole transaction rolls back; on a 4xx the command's
  own effects commit exactly as they would have without a key (a refusal
  some services put on record stays on record) but the key row is deleted
  in that same transaction. Only successful answers are replayed.
- `transaction.on_commit` hooks the services register (socket pushes, Celery
  dispatch) are deferred to the outer commit: they fire once, after the
  command and its answer are durable, and never for a try that rolled back.
  A retry that replays registers none.
- The cost: the command's row locks are held until its answer is rendered
  (microseconds more), and a retry that races the first waits for it on a
  database connection. Only POSTs that carry the header pay anything.

The user: DRF views authenticate inside the view, so `process_view` runs the
view's own authenticators (Bearer token or session, as that view declares)
on a copy of the request. A view without authenticators (the signed channel
and survey webhooks, which deduplicate by the provider's message id) or an
anonymous caller is passed through untouched: the view answers 401 itself.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.views import APIView

from contactcenter.models import IdempotentRequest

HEADER = "Idempotency-Key"
META_KEY = "HTTP_IDEMPOTENCY_KEY"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
KEY_PATTERN = "^[ -~]*[!-~][ -~]*$"  # what key_problem() accepts: printable ASCII, not only spaces (for the schema)
DEFAULT_TTL_SECONDS = 24 * 3600
METHODS = frozenset({"POST"})


def ttl() -> dt.timedelta:
    return dt.timedelta(seconds=int(getattr(settings, "IDEMPOTENCY_TTL_SECONDS", DEFAULT_TTL_SECONDS)))


def key_problem(key: str) -> str | None:
    """Why `key` is not a usable Idempotency-Key, or None. Printable ASCII, 1 to 255 characters."""
    if not key.strip():
        return "the Idempotency-Key header is empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"the Idempotency-Key header is longer than {MAX_KEY_LENGTH} characters"
    if not all(" " <= ch <= "~" for ch in key):
        return "the Idempotency-Key header may hold printable ASCII characters only"
    return None


def purge_expired(now: dt.datetime | None = None) -> int:
    """Delete the stored answers older than the TTL (the beat task). Returns how many went.

    Idempotent; safe beside live requests: a key being used right now is
    younger than the TTL, and an expired row a retry is about to reuse is
    deleted by that retry too (whoever deletes it first wins, the other
    deletes nothing).
    """
    cutoff = (now or timezone.now()) - ttl()
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def _error(status: int, detail: str, code: str) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code, "field": HEADER}, status=status)


def _authenticate(request, view_func):
    """(view, DRF request) as the DRF view would authenticate it, or None: anonymous, refused, or a view
    without authenticators."""
    view = view_func.cls(**getattr(view_func, "initkwargs", {}))
    # Rate-limit-only authenticators (throttling.AnonymousRateLimit) are left out: the view counts the request.
    authenticators = [a for a in view.get_authenticators() if not getattr(a, "rate_limit_only", False)]
    if not authenticators:
        return None
    # A copy: DRF's Request writes the user it finds (or AnonymousUser) back onto the Django request, and the
    # view must start from the request exactly as it came.
    drf_request = Request(copy.copy(request), authenticators=authenticators)
    try:
        user = drf_request.user
    except exceptions.APIException:
        return None  # a bad token, a failed CSRF check: the view refuses it with the right answer
    if user is None or not user.is_authenticated:
        return None
    return view, drf_request


def _throttled(view, drf_request) -> HttpResponse | None:
    """A replay skips the view, so the view's throttles are checked here: replays are not a free-for-all."""
    try:
        view.check_throttles(drf_request)
    except exceptions.Throttled as exc:
        body = exc.detail if isinstance(exc.detail, dict) else {"detail": str(exc.detail), "code": "throttled"}
        response = JsonResponse(body, status=exc.status_code)
        if exc.wait is not None:
            response["Retry-After"] = str(int(exc.wait))
        return response
    return None


def _replay(row: IdempotentRequest) -> HttpResponse:
    response = HttpResponse(bytes(row.response_body or b""), status=row.status,
                            content_type=row.content_type or "application/json")
    response[REPLAYED_HEADER] = "true"
    return response


class IdempotencyMiddleware:
    """Runs a POST that carries `Idempotency-Key` once per user and key (see the module docstring).

    Must come after AuthenticationMiddleware (the session user) and, being the
    one that calls the view, last of the middlewares with a process_view.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method not in METHODS or META_KEY not in request.META:
            return None
        cls = getattr(view_func, "cls", None)
        if cls is None or not issubclass(cls, APIView) or not getattr(cls, "idempotency", True):
            return None
        authenticated = _authenticate(request, view_func)
        if authenticated is None:
            return None
        view, drf_request = authenticated
        key = request.META[META_KEY]
        problem = key_problem(key)
        if problem:
            return _error(400, problem, "invalid_idempotency_key")
        try:
            body = request.body
        except RequestDataTooBig:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            return JsonResponse({"detail": f"the request body is larger than the limit of {limit} bytes",
                                 "code": "too_large", "field": "body"}, status=413)
        fingerprint = {
            "method": request.method,
            "path": request.get_full_path()[:500],
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        return self._run(request, view_func, view_args, view_kwargs, user_id=str(drf_request.user.pk), key=key,
                         fingerprint=fingerprint, on_replay=lambda: _throttled(view, drf_request))

    def _run(self, request, view_func, view_args, view_kwargs, *, user_id: str, key: str, fingerprint: dict,
             on_replay):
        with transaction.atomic():
            row, existing = _claim(user_id, key, fingerprint)
            if existing is not None:
                refused = on_replay()
                if refused is not None:
                    return refused
                if any(getattr(existing, name) != value for name, value in fingerprint.items()):
                    return _error(422, "this Idempotency-Key was used for a different request (method, path or "
                                       "body); use a new key for a new command", "idempotency_key_reused")
                if existing.status is None:  # never committed by this module; kept for rows written otherwise
                    return _error(409, "the first request with this Idempotency-Key is still running",
                                  "idempotency_key_in_progress")
                return _replay(existing)
            # An exception from the view leaves this block and rolls everything back, the claim included.
            response = view_func(request, *view_args, **view_kwargs)
            if hasattr(response, "render") and callable(response.render):
                response = response.render()  # the stored body must be the bytes the client gets
            status = response.status_code
            if transaction.get_rollback():
                pass  # the view's own failure already doomed the transaction: it all rolls back
            elif status >= 500:
                transaction.set_rollback(True)  # the command failed: nothing of it, nor the key, stays
            elif status >= 400 or getattr(response, "streaming", False):
                # Refused: the command's own effects stand as without a key, the key does not (a retry runs).
                IdempotentRequest.objects.filter(pk=row.pk).delete()
            else:
                IdempotentRequest.objects.filter(pk=row.pk).update(
                    status=status, response_body=response.content,
                    content_type=response.get("Content-Type", "")[:100])
            return response


def _claim(user_id: str, key: str, fingerprint: dict) -> tuple[IdempotentRequest | None, IdempotentRequest | None]:
    """Insert the key's row, or find the one already committed: (ours, None) or (None, theirs).

    Inside the caller's transaction. The insert is a savepoint, so a unique
    violation does not poison the transaction. Why it is safe under races:
    PostgreSQL makes the insert wait for a concurrent transaction holding the
    same (user_id, key), so the SELECT after a violation sees its committed
    row; a row gone by then (a refused first try, a purge) or expired is
    simply claimed again.
    """
    for _ in range(5):
        try:
            with transaction.atomic():
                return IdempotentRequest.objects.create(user_id=user_id, key=key, **fingerprint), None
        except IntegrityError:
            pass
        existing = IdempotentRequest.objects.filter(user_id=user_id, key=key).first()
        if existing is None:
            continue  # deleted since the insert failed: try to claim it again
        if existing.created_at < timezone.now() - ttl():
            # Expired but not purged yet: as good as gone. The conditional delete lets one retry win.
            IdempotentRequest.objects.filter(pk=existing.pk, created_at=existing.created_at).delete()
            continue
        return None, existing
    raise RuntimeError(f"could not claim Idempotency-Key {key!r} for user {user_id}")


# --- the OpenAPI schema ---------------------------------------------------------------------------------------


def document_in_schema(result, generator, request, public):
    """drf-spectacular postprocessing hook: every authenticated POST documents `Idempotency-Key`, the replay
    header, 422 for a reused key, and 429 for the rate limits. The signed webhooks (views without
    authenticators: no user, so no per-user key) are left as they are: they deduplicate by the provider's
    message id. Nor is a view that is not a command (`idempotency = False`: the WebSocket ticket)."""
    error = {"$ref": "#/components/schemas/Error"} if "Error" in result.get("components", {}).get("schemas", {}) \
        else {"type": "object"}
    signed = {path for path, _, method, callback in (getattr(generator, "endpoints", None) or [])
              if method == "POST" and (getattr(getattr(callback, "cls", None), "authentication_classes", None) == []
                                       or not getattr(getattr(callback, "cls", None), "idempotency", True))}
    for path, operations in result.get("paths", {}).items():
        operation = operations.get("post")
        if operation is None or path in signed or operation.get("security") == []:
            continue
        parameters = operation.setdefault("parameters", [])
        if not any(p.get("in") == "header" and p.get("name") == HEADER for p in parameters):
            parameters.append({
                "in": "header", "name": HEADER, "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": KEY_PATTERN},
                "description": "Makes a retry safe: the same key (yours, within 24 hours) with the same request "
                               "gets the first answer again, with `Idempotent-Replayed: true`, and the command "
                               "does not run twice. Printable ASCII, 1-255 characters (400 otherwise); a UUID "
                               "per command is a good key. Only successful answers are kept.",
            })
        responses = operation.setdefault("responses", {})
        for status, answer in responses.items():
            if status.startswith("2"):
                answer.setdefault("headers", {})[REPLAYED_HEADER] = {
                    "schema": {"type": "string", "enum": ["true"]},
                    "description": "present on an answer replayed for a repeated Idempotency-Key",
                }
        responses.setdefault("422", {"content": {"application/json": {"schema": error}},
                                     "description": "`idempotency_key_reused`: this Idempotency-Key was used "
                                                    "with another method, path or body"})
        responses.setdefault("429", {"content": {"application/json": {"schema": error}},
                                     "headers": {"Retry-After": {"schema": {"type": "integer"},
                                                                 "description": "seconds to wait"}},
                                     "description": "`throttled`: over a rate limit (README, Limits)"})
    return result
