"""User administration for ARTi platform admins, through the Supabase Auth (GoTrue) admin API.

Only callers whose JWT says `app_metadata.platform_admin` is JSON `true` get past the door (403 for every
other user). The calls go to `{SUPABASE_URL}/auth/v1` with the service-role key, as GoTrue documents them:

* `GET  /admin/users?page=&per_page=` -> `{"users": [...], "aud": ...}` (+ `X-Total-Count`)
* `POST /admin/users` `{email, password, email_confirm, user_metadata, app_metadata}` -> the user
* `POST /invite` `{email, data}` -> the invited user (GoTrue mails the invitation link)
* `GET|PUT|DELETE /admin/users/{id}`; PUT merges `app_metadata` keys (a null value removes one) and takes
  `ban_duration` (`"none"` or a Go duration such as `"24h"`); DELETE answers `{}`.

Requests carry `X-Supabase-Api-Version: 2024-01-01`, so GoTrue's errors come back as
`{"code": "email_exists", "message": ...}` (older servers: `{"code": 422, "error_code", "msg"}`); both are
passed on as `{"error", "message"}` with GoTrue's status (4xx) or 502 when GoTrue fails or is unreachable.

In embedded mode no Auth server runs: every endpoint answers 503 `auth_unavailable`, pointing at
`arti users create/list`.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from pydantic import ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from arti.jwt_auth import PLATFORM_ADMIN_FLAG, Claims
from handlers.errors import HandlerError
from handlers.inputs import Input, json_body
from handlers.services import Services, authenticate, services

API_VERSION = "2024-01-01"
AUTH_TIMEOUT = 15.0
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_BAN_DURATION_RE = re.compile(r"none|(?:\d+(?:\.\d+)?(?:ns|us|ms|s|m|h))+")


# --------------------------------------------------------------------------------------------- inputs


def _email(value: str) -> str:
    value = value.strip().lower()
    if len(value) > 254 or not _EMAIL_RE.fullmatch(value):
        raise ValueError("not an email address")
    return value


class ListParams(Input):
    model_config = ConfigDict(extra="ignore")

    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=50, ge=1, le=1000)


class CreateUser(Input):
    """POST body: a user with a password (confirmed at once), or without one: invited by email."""

    model_config = ConfigDict(extra="forbid")

    email: str
    password: str | None = Field(default=None, min_length=6, max_length=72)
    full_name: str | None = Field(default=None, max_length=200)
    platform_admin: bool = False
    invite: bool | None = None
    """Send GoTrue's invitation mail. Default: invite when no password is given."""

    @field_validator("email")
    @classmethod
    def _check_email(cls, value: str) -> str:
        return _email(value)


class UpdateUser(Input):
    """PATCH body: platform role, ban, display name."""

    model_config = ConfigDict(extra="forbid")

    platform_admin: bool | None = None
    ban_duration: str | None = Field(default=None, max_length=32)
    full_name: str | None = Field(default=None, max_length=200)

    @field_validator("ban_duration")
    @classmethod
    def _check_ban(cls, value: str | None) -> str | None:
        if value is not None and not _BAN_DURATION_RE.fullmatch(value):
            raise ValueError('use "none" to lift a ban, or a duration such as "24h", "720h", "90m"')
        return value


# --------------------------------------------------------------------------------------------- GoTrue


class AuthAdmin:
    """A thin client of GoTrue's admin API (service-role key)."""

    def __init__(self, base_url: str, service_key: str, http: httpx.AsyncClient) -> None:
        self.base = base_url.rstrip("/") + "/auth/v1"
        self._headers = {
            "apikey": service_key,
            "Authorization": f"Bearer {service_key}",
            "X-Supabase-Api-Version": API_VERSION,
            "Accept": "application/json",
        }
        self._http = http

    async def call(self, method: str, path: str, *, json: Any = None,
                   params: dict[str, Any] | None = None) -> httpx.Response:
        try:
            response = await self._http.request(method, f"{self.base}/{path}", json=json, params=params,
                                                 headers=self._headers, timeout=AUTH_TIMEOUT)
        except httpx.HTTPError as exc:
            raise HandlerError(502, "auth_unreachable",
                               f"the Auth server at SUPABASE_URL did not answer ({type(exc).__name__})") from None
        if response.is_success:
            return response
        raise _auth_error(response)


def _auth_error(response: httpx.Response) -> HandlerError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    code = body.get("code") if isinstance(body.get("code"), str) else body.get("error_code")
    message = body.get("message") or body.get("msg") or body.get("error_description") or response.reason_phrase
    if response.status_code >= 500:
        return HandlerError(502, "auth_upstream_error", f"the Auth server failed: {message}")
    return HandlerError(response.status_code, str(code or "auth_error"), str(message or "refused by the Auth server"))


def public_user(user: dict[str, Any]) -> dict[str, Any]:
    """What the admin UI needs of a GoTrue user (no identities, factors or tokens)."""
    app_meta = user.get("app_metadata") or {}
    user_meta = user.get("user_metadata") or {}
    return {
        "id": user.get("id"),
        "email": user.get("email"),
        "full_name": user_meta.get("full_name") or user_meta.get("name"),
        "platform_admin": app_meta.get(PLATFORM_ADMIN_FLAG) is True,
        "created_at": user.get("created_at"),
        "last_sign_in_at": user.get("last_sign_in_at"),
        "email_confirmed_at": user.get("email_confirmed_at"),
        "invited_at": user.get("invited_at"),
        "banned_until": user.get("banned_until"),
    }


# --------------------------------------------------------------------------------------------- handlers


async def _admin(request: Request) -> tuple[Services, Claims, AuthAdmin]:
    """The caller must be a platform admin; the Auth admin API must be configured."""
    svc = services(request)
    claims = await authenticate(request)
    if not claims.is_platform_admin:
        raise HandlerError(403, "forbidden", "only ARTi platform administrators may manage users")
    settings = svc.settings
    if not settings.auth_admin_available:
        raise HandlerError(
            503, "auth_unavailable",
            "user administration needs the Supabase Auth server (SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY); "
            "no Auth server runs in embedded mode; use `arti users create/list` there instead.",
        )
    assert settings.supabase_url is not None and settings.service_role_key is not None
    return svc, claims, AuthAdmin(settings.supabase_url, settings.service_role_key, svc.auth_http)


def _user_id(request: Request) -> str:
    try:
        return str(uuid.UUID(str(request.path_params["user_id"])))
    except ValueError:
        raise HandlerError(400, "invalid_request", "the user id must be a UUID") from None


async def list_users(request: Request) -> Response:
    """GET /admin/users?page=&per_page=."""
    _, _, auth = await _admin(request)
    params = ListParams.model_validate(dict(request.query_params))
    response = await auth.call("GET", "admin/users", params={"page": params.page, "per_page": params.per_page})
    body = response.json()
    users = body.get("users") if isinstance(body, dict) else None
    total = response.headers.get("X-Total-Count")
    return JSONResponse({
        "users": [public_user(u) for u in users or [] if isinstance(u, dict)],
        "page": params.page,
        "per_page": params.per_page,
        "total": int(total) if total and total.isdigit() else None,
    })


async def create_user(request: Request) -> Response:
    """POST /admin/users: create (with a password) or invite (by email) a user."""
    _, _, auth = await _admin(request)
    spec = CreateUser.model_validate(await json_body(
        request, '{"email": "...", "password"?, "full_name"?, "platform_admin"?, "invite"?}'))
    user_meta = {"full_name": spec.full_name} if spec.full_name else {}
    invite = spec.invite if spec.invite is not None else spec.password is None
    if invite:
        if spec.password is not None:
            raise HandlerError(400, "invalid_request", "an invited user chooses their own password; omit password")
        user = (await auth.call("POST", "invite", json={"email": spec.email, "data": user_meta})).json()
        if spec.platform_admin:
            user = (await auth.call("PUT", f"admin/users/{user['id']}",
                                    json={"app_metadata": {PLATFORM_ADMIN_FLAG: True}})).json()
    else:
        payload: dict[str, Any] = {"email": spec.email, "password": spec.password, "email_confirm": True,
                                   "user_metadata": user_meta}
        if spec.platform_admin:
            payload["app_metadata"] = {PLATFORM_ADMIN_FLAG: True}
        user = (await auth.call("POST", "admin/users", json=payload)).json()
    return JSONResponse({"user": public_user(user), "invited": invite}, status_code=201)


async def get_user(request: Request) -> Response:
    """GET /admin/users/{id}."""
    _, _, auth = await _admin(request)
    user = (await auth.call("GET", f"admin/users/{_user_id(request)}")).json()
    return JSONResponse({"user": public_user(user)})


async def update_user(request: Request) -> Response:
    """PATCH /admin/users/{id}: platform_admin (app_metadata), ban_duration, full_name."""
    _, claims, auth = await _admin(request)
    user_id = _user_id(request)
    change = UpdateUser.model_validate(await json_body(request, '{"platform_admin"?, "ban_duration"?, "full_name"?}'))
    if user_id == claims.sub and (change.platform_admin is False or
                                  (change.ban_duration not in (None, "none"))):
        raise HandlerError(409, "cannot_change_self",
                           "you cannot remove your own platform admin role or ban yourself; ask another admin")
    payload: dict[str, Any] = {}
    if change.platform_admin is not None:
        # GoTrue merges app_metadata; null removes the key (the flag counts only when JSON true).
        payload["app_metadata"] = {PLATFORM_ADMIN_FLAG: True if change.platform_admin else None}
    if change.ban_duration is not None:
        payload["ban_duration"] = change.ban_duration
    if change.full_name is not None:
        payload["user_metadata"] = {"full_name": change.full_name}
    if not payload:
        raise HandlerError(400, "invalid_request", "nothing to change: give platform_admin, ban_duration or full_name")
    user = (await auth.call("PUT", f"admin/users/{user_id}", json=payload)).json()
    return JSONResponse({"user": public_user(user)})


async def delete_user(request: Request) -> Response:
    """DELETE /admin/users/{id} (hard delete: memberships and profile go with it)."""
    _, claims, auth = await _admin(request)
    user_id = _user_id(request)
    if user_id == claims.sub:
        raise HandlerError(409, "cannot_change_self", "you cannot delete your own account; ask another admin")
    await auth.call("DELETE", f"admin/users/{user_id}", json={"should_soft_delete": False})
    return JSONResponse({"deleted": user_id})
