"""`arti users create|list` and `arti token --user`: embedded-mode users and the tokens minted for them."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from arti.cli_users import add_commands
from arti.errors import ArtiError
from arti.jwt_auth import JWTVerifier, mint_service_key
from arti.settings import LOCAL_JWT_SECRET, Settings, embedded_url
from arti.users import create_user


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="arti")
    add_commands(root.add_subparsers(dest="command", required=True))
    return root


def run(settings: Settings, *argv: str) -> int:
    args = parser().parse_args(argv)
    return int(args.func(settings, args))


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Embedded mode on the tests' cluster, no secret configured: `arti token` signs with the local one.
    return Settings(_env_file=None, db_port=urlsplit(database_url).port)  # type: ignore[call-arg]


@pytest.fixture
def email(conn: psycopg.Connection[Any]) -> Iterator[str]:
    address = f"cli-{uuid.uuid4().hex[:8]}@example.test"
    yield address
    conn.execute("delete from auth.users where email = %s", (address,))


async def test_create_list_and_token(settings: Settings, email: str, conn: psycopg.Connection[Any],
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert run(settings, "users", "create", email.upper(), "--password", "hunter22", "--platform-admin",
               "--name", "Ops Person") == 0
    assert f"created user {email} (platform admin)" in capsys.readouterr().out
    row = conn.execute("select id, encrypted_password = extensions.crypt('hunter22', encrypted_password) as ok, "
                       "email_confirmed_at is not null as confirmed, raw_app_meta_data from auth.users "
                       "where email = %s", (email,)).fetchone()
    assert row is not None and row["ok"] and row["confirmed"]
    assert row["raw_app_meta_data"] == {"provider": "email", "providers": ["email"], "platform_admin": True}
    profile = conn.execute("select full_name from public.profiles where id = %s", (row["id"],)).fetchone()
    assert profile == {"full_name": "Ops Person"}, "the profile trigger ran"

    assert run(settings, "users", "list") == 0
    listed = capsys.readouterr().out
    assert f"{row['id']}  {email} (Ops Person)  [platform admin]" in listed

    assert run(settings, "token", "--user", email, "--expires-in", "600") == 0
    out = capsys.readouterr().out
    lines = dict(line.split(":", 1) for line in out.splitlines())
    token = lines["access token"].strip()
    claims = await JWTVerifier(LOCAL_JWT_SECRET).verify(token)
    assert claims.sub == str(row["id"]) and claims.email == email and claims.is_platform_admin
    assert claims.exp - claims.iat == 600  # type: ignore[operator]
    assert lines["anon key"].strip() == mint_service_key(LOCAL_JWT_SECRET, "anon")
    assert lines["service_role key"].strip() == mint_service_key(LOCAL_JWT_SECRET, "service_role")

    assert run(settings, "token", "--user", email, "-q") == 0
    assert capsys.readouterr().out.count(".") == 2, "only the token"


def test_refusals(settings: Settings, email: str, conn: psycopg.Connection[Any]) -> None:
    run(settings, "users", "create", email)
    with pytest.raises(ArtiError, match="already exists"):
        run(settings, "users", "create", email)
    with pytest.raises(ArtiError, match="not an email"):
        run(settings, "users", "create", "not-an-email")
    with pytest.raises(ArtiError, match="6 to 72"):
        run(settings, "users", "create", "x" + email, "--password", "short")
    with pytest.raises(ArtiError, match="no user with email"):
        run(settings, "token", "--user", "nobody@example.test")
    with pytest.raises(ArtiError, match="between 60"):
        run(settings, "token", "--user", email, "--expires-in", "5")
    conn.execute("update auth.users set banned_until = now() + interval '1 hour' where email = %s", (email,))
    with pytest.raises(ArtiError, match="banned"):
        run(settings, "token", "--user", email)


def test_token_outside_embedded_mode_needs_the_projects_secret(database_url: str, email: str) -> None:
    """Cloud mode has no local secret to fall back on: nothing is minted with a well-known key."""
    cloud = Settings(_env_file=None, db_url=database_url)  # type: ignore[call-arg]
    run(cloud, "users", "create", email)
    with pytest.raises(ArtiError, match="SUPABASE_JWT_SECRET, which is not set in cloud mode"):
        run(cloud, "token", "--user", email)


def test_a_real_supabase_database_is_refused(test_cluster: Any) -> None:
    """An auth schema that is not our stand-in (as on Supabase) is never written to."""
    admin_url = embedded_url(test_cluster.port, "template1")
    name = f"fake_supabase_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"create database {name}")
    try:
        url = embedded_url(test_cluster.port, name)
        with psycopg.connect(url, autocommit=True) as raw:
            raw.execute("create schema auth; comment on schema auth is 'Supabase auth'")
            raw.execute("create table auth.users (id uuid primary key, email text)")
        supabase = Settings(_env_file=None, db_url=url)  # type: ignore[call-arg]
        for argv in (("users", "create", "a@example.test"), ("users", "list"), ("token", "--user", "a@example.test")):
            with pytest.raises(ArtiError, match="real Supabase project"):
                run(supabase, *argv)
        with psycopg.connect(url, autocommit=True, row_factory=psycopg.rows.dict_row) as raw:
            assert raw.execute("select count(*) as n from auth.users").fetchone() == {"n": 0}
            with pytest.raises(ArtiError, match="real Supabase project"):
                create_user(raw, "b@example.test")
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"drop database if exists {name} with (force)")
