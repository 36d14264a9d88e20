"""Degrade, don't fail: while PostgreSQL cannot be reached, every request answers 503 with Retry-After.

Three places turn a database failure into that answer, so that none ends as
a bare 500:

- DRF views: the 503 branch of contactcenter.api.exception_handler;
- other views (the pages, the admin, the probes): DatabaseUnavailableMiddleware.process_exception;
- anything outside a view (a middleware saving the session, say): `server_error`, the project's handler500.

The body is the API's error shape: {"detail", "code": "database_unavailable"}.
A failure that is the database's answer rather than its absence (a deadlock,
a serialization failure, a lock or statement timeout) is also worth retrying:
503 `database_busy`. Everything else keeps its own handling.
"""

from __future__ import annotations

import logging
import sys

import psycopg
from django import db
from django.http import JsonResponse
from django.views import defaults

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
# psycopg_pool.PoolTimeout is a psycopg.OperationalError; Django wraps psycopg's errors in its own (same names).
_ERRORS = (db.OperationalError, db.InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)
# SQLSTATEs that mean "the server is not there for us" (class 08: connection exception; 57P0x: shutting down or
# starting up; 53300: no connection slot left). No SQLSTATE at all: the client could not reach it.
_UNAVAILABLE_CLASSES = ("08",)
_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03", "53300"}


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def database_failure(exc: BaseException | None) -> dict | None:
    """The 503 body for a database failure (unreachable or busy), or None when `exc` is something else."""
    if exc is None or not any(isinstance(e, _ERRORS) for e in _chain(exc)):
        return None
    states = [getattr(e, "sqlstate", None) for e in _chain(exc) if isinstance(e, psycopg.Error)]
    state = next((s for s in states if s), None)
    if state is None or state.startswith(_UNAVAILABLE_CLASSES) or state in _UNAVAILABLE_STATES \
            or isinstance(exc, db.InterfaceError):
        return {"detail": "the database is unavailable; try again shortly", "code": "database_unavailable"}
    return {"detail": f"the database could not complete the request ({state}); try again",
            "code": "database_busy"}


def _response(body: dict) -> JsonResponse:
    response = JsonResponse(body, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    """Views outside DRF (pages, admin, probes): a database failure becomes 503 + Retry-After."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        body = database_failure(exception)
        if body is None:
            return None
        log.warning("%s %s: %s (%s)", request.method, request.path, body["code"], exception)
        return _response(body)


def server_error(request):
    """handler500: the exception being handled is a database failure → 503; anything else → Django's 500."""
    body = database_failure(sys.exc_info()[1])
    if body is not None:
        return _response(body)
    return defaults.server_error(request)
