"""Database access: connections with actionable errors, and running work *as a user*.

"As the user" is what PostgREST does per request, inside one transaction:
`set local role <role>` and `set_config('request.jwt.claims', <claims json>, true)`.
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


def set_request_context(conn: psycopg.Connection[Any], role: str, claims: Mapping[str, Any] | None) -> None:
    """Inside the current transaction, become `role` with `claims`, exactly as PostgREST does."""
    if role not in API_ROLES:
        raise ValueError(f"unknown API role {role!r}")
    conn.execute(f"set local role {role}")
    conn.execute(
        "select set_config('request.jwt.claims', %s, true), set_config('request.jwt.claim.sub', %s, true)",
        (json.dumps(dict(claims or {"role": role})), (claims or {}).get("sub") or ""),
    )


@contextmanager
def as_role(conn: psycopg.Connection[Any], role: str,
            claims: Mapping[str, Any] | None = None) -> Iterator[psycopg.Connection[Any]]:
    """Run a block in its own transaction as an API role with claims; the role ends with the block."""
    with conn.transaction():
        set_request_context(conn, role, claims)
        yield conn
