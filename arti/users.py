"""Users of embedded mode: rows in the compat `auth.users`, and access tokens minted for them.

No Auth server (GoTrue) runs in embedded mode, so `arti users create/list` write and read `auth.users`
directly, the way GoTrue's admin API would (bcrypt password, confirmed email, `app_metadata` with
`provider`/`providers` and, for staff, `platform_admin: true`), and `arti token --user EMAIL` mints the
HS256 access token GoTrue would issue, signed with the configured JWT secret.

A real Supabase database is refused: its users belong to its Auth server (use the dashboard or
`/functions/v1/admin/users`), and minting tokens for its users would be impersonation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from arti.compat import compat_state
from arti.errors import ArtiError
from arti.jwt_auth import PLATFORM_ADMIN_FLAG, mint_service_key, mint_token

_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MIN_PASSWORD = 6  # GoTrue's default minimum
MAX_PASSWORD = 72  # bcrypt ignores what comes after 72 bytes
MAX_TOKEN_LIFETIME = 30 * 86400


@dataclass(frozen=True)
class LocalUser:
    """A row of auth.users, as the CLI shows it."""

    id: str
    email: str | None
    full_name: str | None
    platform_admin: bool
    created_at: datetime | None
    banned_until: datetime | None
    app_metadata: dict[str, Any]
    user_metadata: dict[str, Any]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LocalUser:
        app = row.get("raw_app_meta_data") or {}
        meta = row.get("raw_user_meta_data") or {}
        return cls(
            id=str(row["id"]),
            email=row.get("email"),
            full_name=meta.get("full_name") or meta.get("name"),
            platform_admin=app.get(PLATFORM_ADMIN_FLAG) is True,
            created_at=row.get("created_at"),
            banned_until=row.get("banned_until"),
            app_metadata=dict(app),
            user_metadata=dict(meta),
        )


_COLUMNS = "id, email, raw_app_meta_data, raw_user_meta_data, created_at, banned_until"

INSERT_USER_SQL = """
with new_user as (
    insert into auth.users (
        instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
        confirmation_token, recovery_token, email_change_token_new, email_change, email_change_token_current,
        phone_change, phone_change_token, reauthentication_token,
        raw_app_meta_data, raw_user_meta_data, is_super_admin, created_at, updated_at, is_sso_user, is_anonymous
    )
    values (
        '00000000-0000-0000-0000-000000000000', coalesce(%(id)s::uuid, extensions.gen_random_uuid()),
        'authenticated', 'authenticated', %(email)s,
        extensions.crypt(%(password)s::text, extensions.gen_salt('bf', 10)),
        case when %(confirmed)s then now() end,
        '', '', '', '', '', '', '', '',
        %(app_meta)s::jsonb, %(user_meta)s::jsonb, false, now(), now(), false, false
    )
    returning *
),
identity as (
    insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
    select u.id::text, u.id,
        jsonb_build_object('sub', u.id::text, 'email', u.email, 'email_verified', %(confirmed)s,
                           'phone_verified', false),
        'email', now(), now(), now()
    from new_user as u
)
select {columns} from new_user
""".replace("{columns}", _COLUMNS)
"""A user exactly as GoTrue's admin API writes one (the nil instance id, aud and role `authenticated`, empty
token columns: GoTrue cannot read NULL there) plus its `email` identity, through which GoTrue signs in with a
password. The password is bcrypt-hashed as GoTrue does; a NULL password leaves no hash (no password sign-in).
Parameters: id (NULL: a new one), email, password, confirmed, app_meta and user_meta (JSON text)."""


def require_local_auth(conn: psycopg.Connection[Any]) -> None:
    """Refuse unless this database's auth schema is the embedded-mode stand-in."""
    state = compat_state(conn)
    if state == "supabase":
        raise ArtiError(
            "this database is a real Supabase project: its users belong to its Auth server. "
            "Manage them in the Supabase dashboard or with /functions/v1/admin/users, and sign in to get a token."
        )
    if state == "absent":
        raise ArtiError("the database has no auth schema yet: run `arti db migrate` first")


def normalize_email(email: str) -> str:
    """Lower-case and check an email address (GoTrue stores them lower-case)."""
    value = email.strip().lower()
    if len(value) > 254 or not _EMAIL_RE.fullmatch(value):
        raise ArtiError(f"{email!r} is not an email address")
    return value


def create_user(conn: psycopg.Connection[Any], email: str, *, password: str | None = None,
                platform_admin: bool = False, full_name: str | None = None) -> LocalUser:
    """Insert a confirmed user (bcrypt-hashed password when one is given); its profile follows by trigger."""
    require_local_auth(conn)
    address = normalize_email(email)
    if password is not None and not MIN_PASSWORD <= len(password.encode("utf-8")) <= MAX_PASSWORD:
        raise ArtiError(f"the password must be {MIN_PASSWORD} to {MAX_PASSWORD} bytes long")
    if full_name is not None and len(full_name) > 200:
        raise ArtiError("the name must be at most 200 characters")
    app_meta: dict[str, Any] = {"provider": "email", "providers": ["email"]}
    if platform_admin:
        app_meta[PLATFORM_ADMIN_FLAG] = True
    user_meta = {"full_name": full_name} if full_name else {}
    try:
        with conn.transaction():
            row = conn.execute(INSERT_USER_SQL, {
                "id": None, "email": address, "password": password, "confirmed": True,
                "app_meta": json.dumps(app_meta), "user_meta": json.dumps(user_meta),
            }).fetchone()
    except psycopg.errors.UniqueViolation:
        raise ArtiError(f"a user with email {address} already exists (see `arti users list`)") from None
    assert row is not None
    return LocalUser.from_row(row)


def list_users(conn: psycopg.Connection[Any]) -> list[LocalUser]:
    """Every user, oldest first."""
    require_local_auth(conn)
    rows = conn.execute(f"select {_COLUMNS} from auth.users order by created_at, email").fetchall()
    return [LocalUser.from_row(r) for r in rows]


def find_user(conn: psycopg.Connection[Any], email: str) -> LocalUser:
    """The user with this email, or an ArtiError saying how to create one."""
    require_local_auth(conn)
    address = normalize_email(email)
    row = conn.execute(f"select {_COLUMNS}, banned_until > now() as banned, deleted_at is not null as deleted "
                       "from auth.users where email = %s", (address,)).fetchone()
    if row is None:
        raise ArtiError(f"no user with email {address}; create one with `arti users create {address}`")
    if row["banned"] or row["deleted"]:
        raise ArtiError(f"user {address} is banned or deleted; no token is issued for them")
    return LocalUser.from_row(row)


def mint_user_token(secret: str, user: LocalUser, expires_in: int = 3600) -> str:
    """The access token GoTrue would issue for `user` (HS256 with the configured JWT secret)."""
    if not 60 <= expires_in <= MAX_TOKEN_LIFETIME:
        raise ArtiError(f"--expires-in must be between 60 and {MAX_TOKEN_LIFETIME} seconds")
    return mint_token(secret, user.id, user.email, expires_in=expires_in, app_metadata=user.app_metadata,
                      user_metadata=user.user_metadata)


def api_keys(secret: str) -> dict[str, str]:
    """The anon and service_role API keys for this JWT secret, like those `supabase start` prints."""
    return {role: mint_service_key(secret, role) for role in ("anon", "service_role")}
