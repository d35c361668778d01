"""Database access: connections with actionable errors, and running work *as a user*.

"As the user" is what PostgREST does per request, inside one transaction:
`set local role <role>`, `set_config('request.jwt.claims', <claims json>, true)`, and the impersonated
role's own settings (`alter role anon set statement_timeout = '3s'`), which `set role` does not apply:
PostgREST reads them once (pg_db_role_setting) and sets each with `set_config(name, value, true)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from arti.errors import ArtiError

API_ROLES = ("anon", "authenticated", "service_role")


def redact(url: str) -> str:
    """The URL with its password replaced, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def connect(url: str, *, autocommit: bool = False, **kwargs: Any) -> psycopg.Connection[Any]:
    """Open a connection, turning failures into one actionable line."""
    try:
        return psycopg.connect(url, autocommit=autocommit, row_factory=dict_row, **kwargs)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ArtiError(
            f"cannot connect to the database at {redact(url)}: {reason}. "
            "Start the embedded one with `arti db start`, or fix SUPABASE_DB_URL."
        ) from None
    except psycopg.ProgrammingError as exc:
        reason = redact(" ".join(str(exc).split())).replace(url, redact(url))
        raise ArtiError(f"invalid database URL: {reason}. Fix SUPABASE_DB_URL.") from None


def user_claims(user_id: str, *, email: str | None = None, role: str = "authenticated",
                app_metadata: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """JWT claims shaped like the ones GoTrue issues for a signed-in user."""
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "role": role,
        "aud": "authenticated",
        "email": email,
        "app_metadata": dict(app_metadata or {"provider": "email", "providers": ["email"]}),
        "user_metadata": {},
        "aal": "aal1",
        "is_anonymous": False,
    }
    claims.update(extra)
    return claims


ROLE_SETTINGS_SQL = """
select r.rolname as role, s.setdatabase <> 0 as this_database, s.setconfig as config
from pg_catalog.pg_db_role_setting as s
inner join pg_catalog.pg_roles as r on s.setrole = r.oid
where
    r.rolname = any(%(roles)s)
    and s.setdatabase in (0, (select d.oid from pg_catalog.pg_database as d where d.datname = current_database()))
"""
"""The API roles' own settings (`alter role … set`), for this database and for all databases."""

USER_SETTINGS_SQL = "select name from pg_catalog.pg_settings where context = 'user'"
"""Settings any role may change in a transaction: the only ones an impersonated role's settings can apply."""

RoleSettings = dict[str, tuple[tuple[str, str], ...]]
_ROLE_SETTINGS: dict[tuple[str, str, str], RoleSettings] = {}


def role_settings_from(rows: list[Mapping[str, Any]], settable: set[str]) -> RoleSettings:
    """Each API role's settings as (name, value) pairs; a database's own setting wins over the all-databases one."""
    found: dict[str, dict[str, str]] = {role: {} for role in API_ROLES}
    for row in sorted(rows, key=lambda r: bool(r["this_database"])):
        for item in row["config"] or []:
            name, _, value = str(item).partition("=")
            if name in settable:
                found[row["role"]][name] = value
    return {role: tuple(sorted(values.items())) for role, values in found.items()}


def _server_key(info: Any) -> tuple[str, str, str]:
    return (str(info.host), str(info.port), str(info.dbname))


def role_settings(conn: psycopg.Connection[Any], role: str) -> tuple[tuple[str, str], ...]:
    """The settings PostgREST applies when it impersonates `role`, read once per database and cached."""
    key = _server_key(conn.info)
    if key not in _ROLE_SETTINGS:
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(ROLE_SETTINGS_SQL, {"roles": list(API_ROLES)}).fetchall()
            settable = {r["name"] for r in cur.execute(USER_SETTINGS_SQL).fetchall()}
        _ROLE_SETTINGS[key] = role_settings_from(rows, settable)
    return _ROLE_SETTINGS[key].get(role, ())


def request_context_sql(settings: tuple[tuple[str, str], ...]) -> str:
    """One statement setting the claims and the role's settings, all local to the transaction."""
    parts = ["set_config('request.jwt.claims', %s, true)", "set_config('request.jwt.claim.sub', %s, true)"]
    parts += ["set_config(%s, %s, true)"] * len(settings)
    return "select " + ", ".join(parts)


def set_request_context(conn: psycopg.Connection[Any], role: str, claims: Mapping[str, Any] | None) -> None:
    """Inside the current transaction, become `role` with `claims` and the role's settings (its statement
    timeout: anon 3 s, authenticated 8 s on Supabase), exactly as PostgREST does."""
    if role not in API_ROLES:
        raise ValueError(f"unknown API role {role!r}")
    settings = role_settings(conn, role)
    conn.execute(f"set local role {role}")
    conn.execute(
        request_context_sql(settings),
        (json.dumps(dict(claims or {"role": role})), (claims or {}).get("sub") or "",
         *(part for pair in settings for part in pair)),
    )


@contextmanager
def as_role(conn: psycopg.Connection[Any], role: str,
            claims: Mapping[str, Any] | None = None) -> Iterator[psycopg.Connection[Any]]:
    """Run a block in its own transaction as an API role with claims; the role ends with the block."""
    with conn.transaction():
        set_request_context(conn, role, claims)
        yield conn
