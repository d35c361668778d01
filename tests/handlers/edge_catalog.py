"""What every route of `handlers.app.routes()` reads, and the hostile variants of each input.

`CATALOG` says, for each route and method, who calls it and which inputs it reads (path parameters,
query parameters, JSON body fields), each with a kind and a valid value. It must list exactly the routes
`routes()` serves (tests/handlers/test_edge_inputs.py checks this), so a new route cannot be added
without saying what it reads, and every input it reads is then attacked.

`attacks(case, ids)` turns one entry into requests that are wrong by construction: NUL bytes, control
characters and unpaired surrogates in strings, over-long values, numbers no field accepts (1e999,
10^400), wrong JSON types, bodies nested thousands of levels deep, non-UUID path parameters, tokens
whose `sub` is not a UUID. Each must be answered with a JSON 4xx `{"error", "message"}`. Inputs a route
does not read (a body sent to a GET) must leave its answer unchanged. The same requests run through
the ASGI app and through the real uvicorn + Caddy stack.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import jwt

from handlers.app import routes
from tests.factories import World

PREFIX = "/functions/v1"
GOTRUE_USER_ID = "a9c6f5d2-1c2e-4a4b-9a53-3d1e6b2f9c10"
NUL = "\x00"


@dataclass(frozen=True)
class In:
    """One input a route reads: its name, kind (uuid, text, int, bool, provider) and a valid value.

    A valid value like "{org_a}" is filled in from the world's ids.
    """

    name: str
    kind: str
    valid: Any
    required: bool = True


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    """As in routes(), without the /functions/v1 prefix."""
    persona: str | None
    """Whose token is sent (None: no token)."""
    path_params: tuple[In, ...] = ()
    query: tuple[In, ...] = ()
    body: tuple[In, ...] | None = None
    """The JSON object's fields, or None when the route reads no body."""
    reads_token: bool = False
    """Reads an Authorization header when one is sent, though none is required (the OAuth callback)."""
    ok: tuple[int, ...] = (200,)
    """What the valid request is answered with."""

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


CATALOG: tuple[Case, ...] = (
    Case("GET", "/health", None, ok=(200, 503)),  # 503 where no worker runs: the answer, not an error
    Case("GET", "/health/live", None),
    Case("GET", "/oauth/{provider}/start", "manager",
         path_params=(In("provider", "provider", "youtube"),),
         query=(In("org_id", "uuid", "{org_a}"), In("artist_id", "uuid", "{artist_a}"),
                In("redirect_to", "text", "https://app.arti.test/settings/accounts", required=False),
                In("redirect", "bool", "false", required=False))),
    Case("GET", "/oauth/{provider}/callback", None, reads_token=True, ok=(400,),  # an unknown state
         path_params=(In("provider", "provider", "youtube"),),
         query=(In("state", "text", "an-unknown-state-value"), In("code", "text", "a-code", required=False),
                In("error", "text", "access_denied", required=False),
                In("error_description", "text", "the user said no", required=False))),
    Case("POST", "/oauth/{provider}/complete", "manager", ok=(400,),  # an unknown completion secret
         path_params=(In("provider", "provider", "youtube"),),
         body=(In("completion", "text", "an-unknown-completion-secret"),)),
    Case("POST", "/oauth/{provider}/disconnect", "manager",
         path_params=(In("provider", "provider", "spotify"),),
         body=(In("account_id", "uuid", "{account_a}"),)),
    Case("POST", "/insights/ask", "analyst",
         body=(In("org_id", "uuid", "{org_a}"), In("question", "text", "How did followers change?"),
               In("artist_id", "uuid", "{artist_a}", required=False))),
    Case("GET", "/admin/users", "platform_admin",
         query=(In("page", "int", "1", required=False), In("per_page", "int", "50", required=False))),
    Case("POST", "/admin/users", "platform_admin", ok=(201,),
         body=(In("email", "text", "new.user@example.test"), In("password", "text", "a-long-password",
                                                                 required=False),
               In("full_name", "text", "New User", required=False),
               In("platform_admin", "bool", False, required=False), In("invite", "bool", False, required=False))),
    Case("GET", "/admin/users/{user_id}", "platform_admin", path_params=(In("user_id", "uuid", GOTRUE_USER_ID),)),
    Case("PATCH", "/admin/users/{user_id}", "platform_admin", path_params=(In("user_id", "uuid", GOTRUE_USER_ID),),
         body=(In("full_name", "text", "New Name", required=False), In("platform_admin", "bool", True, required=False),
               In("ban_duration", "text", "none", required=False))),
    Case("DELETE", "/admin/users/{user_id}", "platform_admin", path_params=(In("user_id", "uuid", GOTRUE_USER_ID),)),
)


# --------------------------------------------------------------------------------------------- requests


@dataclass
class Call:
    """One request: method, raw path (already percent-encoded), query, raw body, headers."""

    label: str
    method: str
    path: str
    query: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.path + ("?" + urlencode(self.query) if self.query else "")


def user_token(secret: str, sub: Any, **claims: Any) -> str:
    """An HS256 user token as GoTrue shapes it, with any `sub` (even one GoTrue would never issue)."""
    now = int(time.time())
    payload = {"iss": "http://127.0.0.1:54321/auth/v1", "sub": sub, "aud": "authenticated", "exp": now + 600,
               "iat": now, "email": "", "role": "authenticated", "app_metadata": {"provider": "email"},
               "user_metadata": {}, "session_id": str(uuid.uuid4()), **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


def auth_headers(case: Case, users: dict[str, Any], secret: str) -> dict[str, str]:
    if case.persona is None:
        return {}
    extra = {"app_metadata": {"provider": "email", "platform_admin": True}} if case.persona == "platform_admin" else {}
    return {"Authorization": f"Bearer {user_token(secret, str(users[case.persona]), **extra)}"}


def _fill(value: Any, ids: dict[str, Any]) -> Any:
    return value.format(**{k: str(v) for k, v in ids.items()}) if isinstance(value, str) else value


def _path(case: Case, values: dict[str, str]) -> str:
    path = PREFIX + case.path
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


def _body(fields: dict[str, str]) -> bytes:
    """A JSON object from raw JSON fragments (so invalid numbers and escapes go out exactly as written)."""
    return ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in fields.items()) + "}").encode()


def valid_call(case: Case, ids: dict[str, Any], users: dict[str, Any], secret: str) -> Call:
    """The request the route answers with `case.ok`."""
    path = _path(case, {p.name: quote(str(_fill(p.valid, ids)), safe="") for p in case.path_params})
    query = [(q.name, str(_fill(q.valid, ids))) for q in case.query]
    body = None
    headers = auth_headers(case, users, secret)
    if case.body is not None:
        body = _body({b.name: json.dumps(_fill(b.valid, ids)) for b in case.body})
        headers["Content-Type"] = "application/json"
    return Call("valid", case.method, path, query, body, headers)


DEEP = 5000
"""Far beyond Python's recursion limit: json.loads raises RecursionError on it."""

PATH_ATTACKS = {
    "uuid": ["not-a-uuid", "%00", "%ff%fe", "x" * 300, "9" * 40, "00000000-0000-0000-0000-00000000000g"],
    "provider": ["nope", "%00", "x" * 300, "SPOTIFY", "spotify%00"],
}
QUERY_ATTACKS = {
    "uuid": ["not-a-uuid", "{valid}" + NUL, NUL, "", "9" * 400, "1e999"],
    "text": ["{valid}" + NUL, NUL, "{valid}\x1b[31m", "x" * 5000],
    "int": ["1e999", "-1", "0", "9" * 400, "1" + NUL, "abc", ""],
    "bool": ["maybe", "true" + NUL, "2"],
}
_COMMON_BODY = ['"\\u0000"', '"\\ud800"', "1e999", "1" + "0" * 400, "[]", "{}", "[" * 40 + "]" * 40,
                "[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP]
BODY_ATTACKS = {
    "uuid": [*_COMMON_BODY, '"not-a-uuid"', "{valid}\\u0000", "12345", "true"],
    "text": [*_COMMON_BODY, "{valid}\\u0000", "{valid}\\u001b[31m", "{valid}\\udfff", '"' + "x" * 20000 + '"', "true",
             "12"],
    "bool": [*_COMMON_BODY, '"maybe"', "2", '"true\\u0000"'],
}
WHOLE_BODY_ATTACKS = {
    "deep array": "[" * DEEP + "]" * DEEP,
    "deep object": '{"a":' * DEEP + "1" + "}" * DEEP,
    "deep in an extra field": None,  # built from the valid body
    "array": "[]",
    "string": '"hello"',
    "null": "null",
    "huge number": "1e999",
    "huge integer": "9" * 5000,
    "not json": "{'org_id': 1}",
    "truncated": '{"a": 1',
    "empty": "",
    "nul key": '{"\\u0000": 1}',
    "over 64 KiB": '{"pad": "' + "x" * 70_000 + '"}',
}
BAD_SUBS: list[Any] = ["not-a-uuid", NUL, "1' or '1'='1", "00000000-0000-0000-0000-00000000000g",
                       "{00000000-0000-0000-0000-000000000000}", 42, ["x"]]


def _quoted_fragment(template: str, valid: Any) -> str:
    """A body fragment: `{valid}` patterns become the valid string with the attack appended, quoted."""
    if template.startswith("{valid}"):
        return '"' + json.dumps(str(valid))[1:-1] + template[len("{valid}"):] + '"'
    return template


def attacks(case: Case, ids: dict[str, Any], users: dict[str, Any], secret: str) -> Iterator[tuple[Call, bool]]:
    """(request, reads_it): requests that must be refused with a JSON 4xx when the route reads what was
    changed, and answered as the valid request is when it does not."""
    base = valid_call(case, ids, users, secret)

    def variant(label: str, **changes: Any) -> Call:
        call = Call(label, base.method, base.path, list(base.query), base.body, dict(base.headers))
        for name, value in changes.items():
            setattr(call, name, value)
        return call

    for param in case.path_params:
        for attack in PATH_ATTACKS[param.kind]:
            values = {p.name: quote(str(_fill(p.valid, ids)), safe="") for p in case.path_params}
            values[param.name] = attack
            yield variant(f"path {param.name}={attack[:30]!r}", path=_path(case, values)), True

    for query_in in case.query:
        valid = str(_fill(query_in.valid, ids))
        for attack in QUERY_ATTACKS[query_in.kind]:
            value = attack.replace("{valid}", valid)
            query = [(k, value if k == query_in.name else v) for k, v in base.query]
            yield variant(f"query {query_in.name}={value[:30]!r}", query=query), True
        if query_in.required:
            yield variant(f"query without {query_in.name}",
                          query=[(k, v) for k, v in base.query if k != query_in.name]), True

    if case.body is not None:
        fields = {b.name: json.dumps(_fill(b.valid, ids)) for b in case.body}
        for body_in in case.body:
            for attack in BODY_ATTACKS[body_in.kind]:
                fragment = _quoted_fragment(attack, _fill(body_in.valid, ids))
                yield variant(f"body {body_in.name}={fragment[:30]}", body=_body({**fields, body_in.name: fragment})), \
                    True
            if body_in.required:
                yield variant(f"body without {body_in.name}",
                              body=_body({k: v for k, v in fields.items() if k != body_in.name})), True
        for label, raw in WHOLE_BODY_ATTACKS.items():
            if raw is None:
                raw = _body({**fields, "extra": "[" * 50 + "]" * 50}).decode()
            yield variant(f"body {label}", body=raw.encode()), True
        yield variant("body invalid UTF-8", body=b'{"a": "\xff\xfe"}'), True
    else:
        # A body the route never reads changes nothing.
        yield variant("ignored deep body", body=("[" * DEEP + "]" * DEEP).encode(),
                      headers={**base.headers, "Content-Type": "application/json"}), False

    if case.persona is not None or case.reads_token:
        for sub in BAD_SUBS:
            headers = {**base.headers, "Authorization": f"Bearer {user_token(secret, sub)}"}
            yield variant(f"token sub={sub!r}"[:60], headers=headers), True
    else:
        yield variant("ignored query", query=[*base.query, ("x", NUL), ("y", "9" * 400)]), False


# --------------------------------------------------------------------------------------------- running it


def world_ids(world: World) -> dict[str, Any]:
    """The world's ids, for the "{org_a}"-style valid values."""
    return {k: v for k, v in world.ids.items() if isinstance(k, str)}


def served() -> dict[str, set[str]]:
    """Path -> methods, as routes() serves them."""
    paths: dict[str, set[str]] = {}
    for route in routes():
        paths.setdefault(route.path, set()).update(route.methods or ())
    return paths


async def send(client: httpx.AsyncClient, call: Call) -> httpx.Response:
    return await client.request(call.method, call.url, content=call.body, headers=call.headers)


def assert_json_4xx(response: httpx.Response, what: str) -> None:
    assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    assert response.headers.get("content-type", "").startswith("application/json"), what
    body = response.json()
    assert set(body) == {"error", "message"}, f"{what}: {body}"
    assert isinstance(body["error"], str) and isinstance(body["message"], str) and body["message"], what
    assert response.headers.get("x-request-id"), what


async def run_matrix(client: httpx.AsyncClient, case: Case, ids: dict[str, Any], users: dict[str, Any],
                     secret: str) -> int:
    """Send every attack of `case` (tokens signed with `secret`); returns how many were sent."""
    valid = await send(client, valid_call(case, ids, users, secret))
    assert valid.status_code in case.ok, f"{case.key} valid request: {valid.status_code} {valid.text[:300]}"
    sent = 0
    for call, reads_it in attacks(case, ids, users, secret):
        response = await send(client, call)
        what = f"{case.key} {call.label}"
        if reads_it:
            assert_json_4xx(response, what)
        else:
            assert response.status_code == valid.status_code, f"{what}: {response.status_code} {response.text[:300]}"
            assert response.headers.get("content-type", "").startswith("application/json"), what
        sent += 1
    return sent
