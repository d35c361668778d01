"""JSON errors for every handler: `{"error": code, "message": text}` with the right status, never a trace.

Handlers raise :class:`HandlerError` (or let an :class:`~arti.jwt_auth.AuthError`, a pydantic
``ValidationError`` or a database error escape); :func:`endpoint` turns each of them into its JSON answer.
Anything else is logged with its traceback and answered ``500 {"error": "internal", ...}`` with a request id
the operator can find in the log.
"""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from arti.crypto import KeySettingError
from arti.jwt_auth import AuthError

log = logging.getLogger("handlers")

Handler = Callable[[Request], Awaitable[Response]]

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")

# SQLSTATEs mapped the way PostgREST maps them (see ARCHITECTURE.md, "Rules of the house").
_SQLSTATE_STATUS = {
    "42501": (403, "forbidden"),
    "P0002": (404, "not_found"),
    "22023": (400, "invalid_request"),
    "23505": (409, "conflict"),
    "23503": (409, "conflict"),
    "PT429": (429, "rate_limited"),
}


class HandlerError(Exception):
    """An answer other than success: HTTP status, stable machine-readable code, message a user can act on."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error body every handler answers with."""
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__") or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def to_response(exc: BaseException, request_id: str) -> Response:
    """The JSON answer for an exception (logged when it is our fault)."""
    if isinstance(exc, HandlerError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    if isinstance(exc, AuthError):
        # RFC 6750 section 3: a bare challenge when no token came, `invalid_token` when one was refused.
        challenge = "Bearer" if exc.code == "missing_token" else 'Bearer error="invalid_token"'
        headers = {"WWW-Authenticate": challenge} if exc.http_status == 401 else None
        return error_response(exc.http_status, exc.code, exc.message, headers)
    if isinstance(exc, ValidationError):
        return error_response(400, "invalid_request", _validation_message(exc))
    if isinstance(exc, KeySettingError):
        log.error("encryption key ring unusable: %s", exc)
        return error_response(503, "encryption_unavailable",
                              "Provider tokens cannot be encrypted: ARTI_ENCRYPTION_KEYS is missing or invalid.")
    if isinstance(exc, PoolTimeout | psycopg.OperationalError):
        log.warning("database unavailable (request %s): %s", request_id, exc)
        return error_response(503, "database_unavailable", "The database is not reachable right now; try again.",
                              {"Retry-After": "5"})
    if isinstance(exc, psycopg.Error) and exc.sqlstate in _SQLSTATE_STATUS:
        status, code = _SQLSTATE_STATUS[exc.sqlstate]
        message = (exc.diag.message_primary or code).strip()
        return error_response(status, code, message)
    if isinstance(exc, psycopg.DataError):
        # A value Postgres cannot take (class 22, as PostgREST answers 400; or refused by psycopg before
        # sending, e.g. a NUL byte in text). Inputs are checked before this (handlers.inputs); this is the net.
        log.warning("request %s: data refused by the database: %s", request_id, exc)
        message = (exc.diag.message_primary or str(exc)).strip() if exc.sqlstate else str(exc).strip()
        return error_response(400, "invalid_request", f"a value in the request cannot be stored: {message}")
    if isinstance(exc, HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))
    log.error("unhandled error in request %s", request_id, exc_info=exc)
    return error_response(500, "internal", f"An internal error occurred (request id {request_id}); it was logged.")


def request_id_of(request: Request) -> str:
    """The caller's X-Request-Id when it is sane, otherwise a fresh one."""
    given = request.headers.get(REQUEST_ID_HEADER, "")
    return given if _REQUEST_ID_RE.fullmatch(given) else uuid.uuid4().hex


def endpoint(handler: Handler) -> Handler:
    """Wrap a handler: errors become JSON answers; every answer carries the request id and `no-store`."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        request_id = request_id_of(request)
        request.state.request_id = request_id
        try:
            response = await handler(request)
        except Exception as exc:  # the one place exceptions become answers
            response = to_response(exc, request_id)
        return _stamped(response, request_id)

    return wrapped


def _stamped(response: Response, request_id: str) -> Response:
    """Every answer carries its request id and `no-store`."""
    response.headers[REQUEST_ID_HEADER] = request_id
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Routing errors (unknown path, wrong method) as JSON."""
    request_id = request_id_of(request)
    return _stamped(to_response(exc, request_id), request_id)


async def unhandled_exception_handler(request: Request, exc: Exception) -> Response:
    """Last resort outside the handlers (middleware): 500 JSON, logged."""
    request_id = request_id_of(request)
    return _stamped(to_response(exc, request_id), request_id)


def json_object(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else a 400."""
    if not isinstance(value, dict):
        raise HandlerError(400, "invalid_request", "the request body must be a JSON object")
    return value
