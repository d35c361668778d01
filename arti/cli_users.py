"""`arti users create|list` and `arti token --user EMAIL`: local users and tokens in embedded mode.

Wire into the main parser with `add_commands(subparsers)`; each command is `func(settings, args) -> int`
like the other `arti` commands, and reports failures as ArtiError (one line, non-zero exit).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from typing import Any

from arti.errors import ArtiError
from arti.settings import Settings

PROMPT = "\0prompt"  # --password given without a value: ask on the terminal


def _password(args: argparse.Namespace) -> str | None:
    if args.password != PROMPT:
        return args.password  # type: ignore[no-any-return]
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\n")
        if not line:
            raise ArtiError("--password without a value reads it from the terminal or stdin; none was given")
        return line
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise ArtiError("the two passwords differ")
    return first


def cmd_users_create(settings: Settings, args: argparse.Namespace) -> int:
    from arti.db import connect
    from arti.users import create_user

    password = _password(args)
    with connect(settings.database_url(), autocommit=True) as conn:
        user = create_user(conn, args.email, password=password, platform_admin=args.platform_admin,
                           full_name=args.name)
    role = " (platform admin)" if user.platform_admin else ""
    print(f"created user {user.email}{role}: {user.id}")
    print(f"get a token: arti token --user {user.email}")
    return 0


def cmd_users_list(settings: Settings, args: argparse.Namespace) -> int:
    from arti.db import connect
    from arti.users import list_users

    with connect(settings.database_url(), autocommit=True) as conn:
        users = list_users(conn)
    if args.json:
        print(json.dumps([{"id": u.id, "email": u.email, "full_name": u.full_name,
                           "platform_admin": u.platform_admin, "created_at": u.created_at,
                           "banned_until": u.banned_until} for u in users], indent=2, default=str))
        return 0
    if not users:
        print("no users yet: arti users create EMAIL [--password] [--platform-admin] [--name NAME]")
        return 0
    for u in users:
        flags = ", ".join(f for f, on in (("platform admin", u.platform_admin), ("banned", bool(u.banned_until)))
                          if on)
        name = f" ({u.full_name})" if u.full_name else ""
        print(f"{u.id}  {u.email}{name}" + (f"  [{flags}]" if flags else ""))
    return 0


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from arti.db import connect
    from arti.users import api_keys, find_user, mint_user_token

    with connect(settings.database_url(), autocommit=True) as conn:
        user = find_user(conn, args.user)
    secret = settings.verification_secret()
    if secret is None:
        raise ArtiError(f"`arti token` signs with SUPABASE_JWT_SECRET, which is not set in {settings.mode} mode; "
                        "sign in through Supabase Auth instead (or set the project's JWT secret)")
    token = mint_user_token(secret, user, args.expires_in)
    if args.quiet:
        print(token)
        return 0
    keys = api_keys(secret)
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + args.expires_in))
    print(f"user:             {user.email} ({user.id})" + (" [platform admin]" if user.platform_admin else ""))
    print(f"access token:     {token}")
    print(f"expires:          {expires}")
    print(f"anon key:         {keys['anon']}")
    print(f"service_role key: {keys['service_role']}")
    return 0


def add_commands(subparsers: Any) -> None:
    """Register `users create|list` and `token` on the `arti` subparsers."""
    users = subparsers.add_parser("users", help="local users (embedded mode: rows in auth.users)")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    create = users_sub.add_parser("create", help="create a confirmed user")
    create.add_argument("email", help="email address (stored lower-case)")
    create.add_argument("--password", nargs="?", const=PROMPT, default=None,
                        help="password (6-72 bytes); without a value it is read from the terminal or stdin")
    create.add_argument("--platform-admin", action="store_true",
                        help="mark as ARTi platform staff (app_metadata.platform_admin = true)")
    create.add_argument("--name", help="display name (the profile's full_name)")
    create.set_defaults(func=cmd_users_create)
    listing = users_sub.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=cmd_users_list)

    token = subparsers.add_parser("token", help="mint a local access token for a user, and print the API keys")
    token.add_argument("--user", required=True, metavar="EMAIL", help="the user's email")
    token.add_argument("--expires-in", type=int, default=3600, metavar="SECONDS",
                       help="token lifetime in seconds (default 3600)")
    token.add_argument("-q", "--quiet", action="store_true", help="print only the access token")
    token.set_defaults(func=cmd_token)
