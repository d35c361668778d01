"""Applies the Supabase compatibility bootstrap where the database is not a Supabase database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

COMPAT_SQL = Path(__file__).with_name("sql") / "supabase_compat.sql"
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
    if compat_state(conn) == "supabase":
        return False
    with conn.transaction():
        # Role creation races between concurrent bootstraps of databases in one cluster.
        conn.execute("select pg_advisory_xact_lock(hashtext('arti-compat'))")
        conn.execute(COMPAT_SQL.read_text())
    return True
