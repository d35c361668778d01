"""The `arti` command: manage the embedded Postgres and apply migrations.

Every failure is one line on stderr saying what to do, with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from arti.errors import ArtiError
from arti.localdb import LocalCluster, missing_system_packages
from arti.settings import Settings, embedded_url, get_settings

EXTENSIONS = ("vector", "pg_cron", "pgcrypto", "pgtap")


def embedded_cluster(settings: Settings) -> LocalCluster:
    return LocalCluster(settings.data_dir / "db", settings.db_port)


def _require_embedded(settings: Settings, action: str) -> LocalCluster:
    if settings.mode != "embedded":
        raise ArtiError(
            f"`arti db {action}` manages the embedded Postgres, but SUPABASE_DB_URL is set (cloud mode); "
            "unset it to use the embedded database"
        )
    return embedded_cluster(settings)


def cmd_db_start(settings: Settings, args: argparse.Namespace) -> int:
    cluster = _require_embedded(settings, "start")
    started = cluster.start()
    verb = "started" if started else "already running"
    print(f"embedded Postgres {verb} on 127.0.0.1:{cluster.port} (data: {cluster.pgdata})")
    print(f"connect: psql '{embedded_url(cluster.port)}'")
    return 0


def cmd_db_stop(settings: Settings, args: argparse.Namespace) -> int:
    cluster = _require_embedded(settings, "stop")
    stopped = cluster.stop()
    print("embedded Postgres stopped" if stopped else "embedded Postgres was not running")
    return 0


def cmd_db_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from arti.db import connect
    from arti.migrate import migrate

    with connect(settings.database_url(), autocommit=True) as conn:
        report = migrate(conn, settings.migrations_dir, settings.sql_functions_dir)
    for name in report.queue:
        print(f"applied procrastinate {name}")
    for name in report.applied:
        print(f"applied migration {name}")
    for name in report.functions:
        print(f"applied sql_functions/{name}")
    if not report.applied and not report.functions and not report.queue:
        print("database is up to date: no pending migrations, no changed sql_functions")
    return 0


def cmd_db_reset(settings: Settings, args: argparse.Namespace) -> int:
    from arti.db import connect

    cluster = _require_embedded(settings, "reset")
    cluster.start()
    with connect(embedded_url(cluster.port, "template1"), autocommit=True) as conn:
        conn.execute("drop database if exists postgres with (force)")
        conn.execute("create database postgres")
    print("database postgres recreated")
    cmd_db_migrate(settings, args)
    seed = settings.migrations_dir.parent / "seed.sql"
    if seed.exists() and not args.no_seed:
        from arti.migrate import read_sql

        with connect(settings.database_url(), autocommit=True) as conn, conn.transaction():
            conn.execute(read_sql(seed).encode())
        print(f"seeded from {seed}")
    return 0


def collect_status(settings: Settings) -> dict[str, Any]:
    """Server, port, extensions and pending migrations, as `arti db status` reports them."""
    from arti.db import connect
    from arti.migrate import pending_migrations

    status: dict[str, Any] = {"mode": settings.mode, "missing_system_packages": missing_system_packages()}
    if settings.mode == "embedded":
        cluster = embedded_cluster(settings)
        state = cluster.status()
        status.update(server="running" if state.running else ("stopped" if state.initialized else
                                                              "not initialised"),
                      pid=state.pid, port=cluster.port, data_dir=str(cluster.pgdata))
        if not state.running:
            status["pending_migrations"] = None
            return status
    else:
        status.update(server="remote", port=None)
    with connect(settings.database_url(), autocommit=True) as conn:
        version = conn.execute("select current_setting('server_version') as v").fetchone()
        status["version"] = version["v"] if version else None
        rows = conn.execute(
            "select a.name, a.default_version, e.extversion as installed "
            "from pg_available_extensions a left join pg_extension e on e.extname = a.name "
            "where a.name = any(%s) order by a.name",
            (list(EXTENSIONS),),
        ).fetchall()
        status["extensions"] = {
            row["name"]: {"available": row["default_version"], "installed": row["installed"]} for row in rows
        }
        for name in EXTENSIONS:
            status["extensions"].setdefault(name, {"available": None, "installed": None})
        status["pending_migrations"] = [m.path.name for m in
                                        pending_migrations(conn, settings.migrations_dir)]
    return status


def cmd_db_status(settings: Settings, args: argparse.Namespace) -> int:
    status = collect_status(settings)
    if args.json:
        import json

        print(json.dumps(status, indent=2, default=str))
        return 0 if status["server"] in ("running", "remote") else 3
    print(f"mode:        {status['mode']}")
    print(f"server:      {status['server']}" + (f" (pid {status['pid']})" if status.get("pid") else ""))
    if status.get("port"):
        print(f"port:        127.0.0.1:{status['port']}")
    if status.get("data_dir"):
        print(f"data:        {status['data_dir']}")
    if status.get("version"):
        print(f"version:     PostgreSQL {status['version']}")
    for name, ext in status.get("extensions", {}).items():
        print(f"extension:   {name:<9} available {ext['available'] or '-':<8} installed {ext['installed'] or '-'}")
    pending = status["pending_migrations"]
    if pending is None:
        print("migrations:  unknown (server not running; `arti db start`)")
    else:
        print(f"migrations:  {len(pending)} pending" + (": " + ", ".join(pending) if pending else ""))
    if status["missing_system_packages"]:
        print("missing:     " + ", ".join(status["missing_system_packages"]) +
              " (run: sudo ./scripts/install-system-deps.sh)")
    return 0 if status["server"] in ("running", "remote") else 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arti", description="ARTi platform backend tooling")
    sub = parser.add_subparsers(dest="command", required=True)
    db = sub.add_parser("db", help="the database: embedded Postgres and migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    handlers: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
        "start": cmd_db_start, "stop": cmd_db_stop, "migrate": cmd_db_migrate,
        "status": cmd_db_status, "reset": cmd_db_reset,
    }
    helps = {
        "start": "start the embedded Postgres (initialising it on first use)",
        "stop": "stop the embedded Postgres",
        "migrate": "apply pending migrations and changed sql_functions",
        "status": "server, port, extensions and pending migrations",
        "reset": "recreate the embedded database, migrate and load supabase/seed.sql",
    }
    for name, func in handlers.items():
        p = db_sub.add_parser(name, help=helps[name])
        p.set_defaults(func=func)
        if name == "status":
            p.add_argument("--json", action="store_true", help="print JSON")
        if name == "reset":
            p.add_argument("--no-seed", action="store_true", help="do not load supabase/seed.sql")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
        return int(args.func(settings, args))
    except ArtiError as exc:
        print("arti: error: " + " ".join(str(exc).split()), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
