"""Applies the Supabase compatibility bootstrap where the database is not a Supabase database.

`supabase_compat.sql` is idempotent and applied on every `arti db migrate` (it brings an older bootstrap up
to date). `supabase_compat_once.sql` (Supabase's default privileges on `public`, which the foundation
migration narrows) runs only when the bootstrap first creates the `auth` schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

SQL_DIR = Path(__file__).with_name("sql")
COMPAT_SQL = SQL_DIR / "supabase_compat.sql"
COMPAT_ONCE_SQL = SQL_DIR / "supabase_compat_once.sql"
COMPAT_MARKER = "arti-compat"


def compat_state(conn: psycopg.Connection[Any]) -> str:
    """`absent` (no auth schema), `compat` (ours) or `supabase` (a real Supabase database)."""
    row = conn.execute(
        "select obj_description(oid, 'pg_namespace') as comment from pg_namespace where nspname = 'auth'"
    ).fetchone()
    if row is None:
        return "absent"
    comment = (row["comment"] if isinstance(row, dict) else row[0]) or ""
    return "compat" if comment.startswith(COMPAT_MARKER) else "supabase"


def apply_compat(conn: psycopg.Connection[Any]) -> bool:
    """Apply the bootstrap unless the database is a real Supabase one. Returns True when applied."""
    with conn.transaction():
        # Role creation races between concurrent bootstraps of databases in one cluster.
        conn.execute("select pg_advisory_xact_lock(hashtext('arti-compat'))")
        state = compat_state(conn)
        if state == "supabase":
            return False
        conn.execute(COMPAT_SQL.read_text().encode())
        if state == "absent":
            conn.execute(COMPAT_ONCE_SQL.read_text().encode())
    return True
