"""The `arti` command: manage the embedded Postgres and apply migrations.

Every failure is one line on stderr saying what to do, with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from pydantic import ValidationError

from arti.cli_args import OneLineParser, non_negative_int, positive_int, positive_seconds, uuid_text
from arti.errors import ArtiError
from arti.localdb import LocalCluster, missing_system_packages
from arti.settings import LOCAL_JWT_SECRET, Settings, embedded_url, get_settings

EXTENSIONS = ("vector", "pg_cron", "pgcrypto", "btree_gin", "pg_stat_statements", "pgtap")


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
    print(_running_processes_line(settings, "lose their database connections and reconnect by themselves once "
                                            "Postgres is back (`arti db start`); nothing is stopped"))
    return 0


def _running_processes_line(settings: Settings, effect: str) -> str:
    """One line saying what a database operation does to the platform's running processes."""
    from arti import platform

    runtime = platform.Supervisor(settings)
    running = [f"{s.name} (pid {pid})" for s in platform.services(settings)
               if s.name != "caddy" and (pid := runtime.pid(s.name))]
    if not running:
        return "platform processes: none running (no handlers or worker to disturb)"
    return f"platform processes: {' and '.join(running)} {effect}"


def cmd_db_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from arti.db import connect
    from arti.migrate import migrate

    with connect(settings.database_url(), autocommit=True) as conn:
        report = migrate(conn, settings.migrations_dir)
    for name in report.applied:
        print(f"applied migration {name}")
    if not report.applied:
        print("database is up to date: no pending migrations")
    return 0


def cmd_db_functions(settings: Settings, args: argparse.Namespace) -> int:
    from arti.db import connect
    from arti.migrate import function_drift, write_functions_migration

    with connect(settings.database_url(), autocommit=True) as conn:
        if args.write:
            path = write_functions_migration(conn, settings.sql_functions_dir, settings.migrations_dir, args.write)
            if path is None:
                print("sql_functions/ and the migrations agree: no migration written")
                return 0
            print(f"wrote {path.relative_to(settings.migrations_dir.parent.parent)}; apply it with `arti db migrate`")
            return 0
        drift = function_drift(conn, settings.sql_functions_dir)
    if not drift:
        print("sql_functions/ and the migrated database agree")
        return 0
    print("sql_functions/ files that differ from the migrated database:")
    for name in drift:
        print(f"  {name}")
    raise ArtiError("turn them into a migration: `arti db functions --write <name>` (then `arti db migrate`)",
                    exit_code=3)


def cmd_db_queue_migration(settings: Settings, args: argparse.Namespace) -> int:
    from arti.db import connect
    from arti.migrate import next_version
    from arti.queue_schema import pending_queue_migrations, queue_migration_sql, recorded_migrations

    with connect(settings.database_url(), autocommit=True) as conn:
        installed = bool(recorded_migrations(conn))
        pending = pending_queue_migrations(conn)
    if installed and not pending:
        print("the migrations cover the installed procrastinate package: nothing to write")
        return 0
    path = settings.migrations_dir / f"{next_version(settings.migrations_dir)}_{args.name}.sql"
    path.write_text(queue_migration_sql(args.name, pending if installed else None))
    print(f"wrote {path.name}; apply it with `arti db migrate`")
    return 0


def cmd_db_reset(settings: Settings, args: argparse.Namespace) -> int:
    from arti.db import connect

    cluster = _require_embedded(settings, "reset")
    cluster.start()
    cluster.recreate_database()
    print("database postgres recreated")
    print(_running_processes_line(settings, "had their sessions closed and reconnect by themselves once the "
                                            "migrations below are applied; jobs queued before the reset are gone"))
    cmd_db_migrate(settings, args)
    seed = settings.migrations_dir.parent / "seed.sql"
    if seed.exists() and not args.no_seed:
        from arti.migrate import load_seed
        from arti.settings import PROJECT_ROOT

        with connect(settings.database_url(), autocommit=True) as conn:
            load_seed(conn, seed, PROJECT_ROOT)
        print(f"seeded from {seed} (recorded in supabase_migrations.seed_files, as `supabase db push` does)")
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


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    # The CLI is the composition root: it may start the jobs package (which imports arti, not the reverse).
    from jobs.worker import main as worker_main

    return worker_main(settings, concurrency=args.concurrency or settings.worker_concurrency,
                       queues=args.queue or None, sync_concurrency=args.sync_concurrency)


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    from arti.db import connect

    with connect(settings.database_url(), autocommit=True) as conn:
        if args.account:
            where, params = "a.id = %s", [args.account]
        elif args.org:
            where, params = "a.org_id = %s and a.status = 'active'", [args.org]
        else:
            where, params = "a.status = 'active'", []
        accounts = [r["id"] for r in conn.execute(f"select a.id from public.connected_accounts a where {where}",
                                                  params)]
        if not accounts:
            raise ArtiError("no matching connected account; check the id (`arti sync --all` queues every active one)")
        runs = []
        for index, account in enumerate(accounts, 1):
            run = conn.execute("select private.enqueue_sync(%s, 'manual') as id", (account,)).fetchone()
            runs.append(run["id"] if run else None)
            _progress(index, len(accounts), "queued")
    print(f"queued {len(runs)} sync run(s); a running `arti worker` picks them up")
    if args.wait:
        _wait_for_runs(settings, runs, args.wait)
    return 0


def _progress(done: int, total: int, label: str) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    end = "\n" if done >= total else ""
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label}", end=end, file=sys.stderr, flush=True)


def _wait_for_runs(settings: Settings, runs: list[Any], timeout: float) -> None:
    import time

    from arti.db import connect

    deadline = time.monotonic() + timeout
    with connect(settings.database_url(), autocommit=True) as conn:
        while True:
            rows = conn.execute("select status::text as status, count(*) as n from public.sync_runs "
                                "where id = any(%s) group by 1", (runs,)).fetchall()
            counts = {r["status"]: r["n"] for r in rows}
            finished = counts.get("succeeded", 0) + counts.get("failed", 0)
            _progress(finished, len(runs), f"finished ({counts.get('failed', 0)} failed)")
            if finished >= len(runs):
                return
            if time.monotonic() > deadline:
                print(file=sys.stderr)
                raise ArtiError(f"{len(runs) - finished} sync run(s) still unfinished after {timeout:.0f}s; "
                                "is a worker running (`arti worker`)?")
            time.sleep(1)


def cmd_jobs(settings: Settings, args: argparse.Namespace) -> int:
    from arti.db import connect

    with connect(settings.database_url(), autocommit=True) as conn:
        rows = conn.execute(
            "select queue_name, status::text as status, count(*) as n from procrastinate.procrastinate_jobs "
            "group by 1, 2 order by 1, 2").fetchall()
        workers = conn.execute(
            "select count(*) filter (where last_heartbeat > now() - interval '30 seconds') as alive, "
            "count(*) as known from procrastinate.procrastinate_workers").fetchone()
        stalled = conn.execute(
            "select count(*) as n from procrastinate.procrastinate_jobs j left join "
            "procrastinate.procrastinate_workers w on w.id = j.worker_id where j.status = 'doing' and "
            "(j.worker_id is null or w.last_heartbeat < now() - interval '30 seconds')").fetchone()
        failures = conn.execute(JOB_FAILURES_SQL, (args.limit,)).fetchall() if args.failed else []
    print(f"workers:  {workers['alive'] if workers else 0} alive ({workers['known'] if workers else 0} known)")
    print(f"stalled:  {stalled['n'] if stalled else 0} job(s) held by dead workers")
    if not rows:
        print("queue:    empty")
    for row in rows:
        print(f"queue:    {row['queue_name']:<12} {row['status']:<10} {row['n']}")
    if args.failed:
        _print_failures(failures)
    return 0


JOB_FAILURES_SQL = """
select f.failed_at, f.job_id, f.task_name, f.attempt, f.will_retry, f.error_type, f.error_message, f.task_args,
       j.status::text as job_status
from private.job_failures f
left join procrastinate.procrastinate_jobs j on j.id = f.job_id
order by f.failed_at desc, f.id desc
limit %s
"""


def _print_failures(failures: list[dict[str, Any]]) -> None:
    """The latest failed attempts, newest first, with what became of their job."""
    if not failures:
        print("failures: none recorded")
        return
    print(f"failures: the latest {len(failures)}, newest first")
    for f in failures:
        outcome = "retried" if f["will_retry"] else "gave up"
        job_now = f"job now {f['job_status']}" if f["job_status"] else "job deleted"
        args_text = json.dumps(f["task_args"], sort_keys=True)
        print(f"  {f['failed_at']:%Y-%m-%d %H:%M:%S} job {f['job_id']} {f['task_name']} {args_text} "
              f"attempt {f['attempt']} ({outcome}; {job_now})")
        print(f"      {f['error_type']}: {f['error_message']}")


def cmd_platform(settings: Settings, args: argparse.Namespace) -> int:
    from arti import platform

    if args.action == "start":
        for name, state in platform.start_platform(settings, demo=args.demo):
            print(f"  {name:<11} {state}")
        _print_endpoints(settings)
        return 0
    if args.action == "stop":
        for name, state in platform.stop_platform(settings):
            print(f"  {name:<11} {state}")
        return 0
    if args.action == "supervise":
        from arti.supervisor import main as supervise

        return supervise(settings)
    state = platform.status_platform(settings)
    code, body = state["health"]
    if args.json:
        print(json.dumps(state, indent=2, default=str))
        return 0 if code == 200 else 3
    print(f"  {'process':<11} {'pid':>8}  {'state':<22} {'restarts':>8}  last exit")
    for name, entry in state["processes"].items():
        restarts = "-" if entry.get("restarts") is None else str(entry["restarts"])
        state_text = entry["state"]
        if entry.get("state") == "backoff" and entry.get("next_start_in") is not None:
            state_text = f"backoff ({entry['next_start_in']:.0f} s)"
        print(f"  {name:<11} {entry.get('pid') or '-':>8}  {state_text:<22} {restarts:>8}  {entry['last_exit_text']}")
        if entry.get("note") and name != "postgres":
            print(f"  {'':<11} {'':>8}  {entry['note']}")
    logs = state["logs"]
    print(f"  {'logs':<11} {logs['dir']} (rotated at {logs['max_bytes']:,} bytes, {logs['backups']} kept)")
    print(f"  {'health':<11} {code or 'unreachable'} {json.dumps(body) if body else ''}")
    return 0 if code == 200 else 3


def _print_endpoints(settings: Settings) -> None:
    from arti import platform
    from arti.jwt_auth import mint_service_key

    p = platform.ports(settings)
    entry = ", ".join(f"http://{a if ':' not in a else '[' + a + ']'}:{p['http']}" for a in settings.http_bind.split())
    secret = settings.verification_secret()
    if settings.mode == "embedded" and secret == LOCAL_JWT_SECRET:
        # The public `supabase start` values: printed only in embedded mode, which listens on loopback.
        keys = (f"  anon key         {mint_service_key(secret, 'anon')}\n"
                f"  service_role key {mint_service_key(secret, 'service_role')}\n"
                f"  JWT secret       {secret}  (public local development secret)")
    else:
        keys = ("  API keys         your project's (Supabase dashboard: Settings > API); "
                "none is printed outside embedded mode")
    sandbox = (f"\n  provider sandbox {settings.sandbox_url}  (ARTI_PROVIDER_SANDBOX=1: every provider is a local "
               "fake; connect one with /functions/v1/oauth/<provider>/start)" if settings.sandbox_active else "")
    print(f"""
ARTi backend is up ({settings.mode} mode).
  entry point      {entry}  (/health, /functions/v1/*)
  handlers         http://127.0.0.1:{p['handlers']}/functions/v1/health
  database         {settings.database_url() if settings.mode == 'embedded' else '(SUPABASE_DB_URL)'}{sandbox}
{keys}
Next: `.venv/bin/arti users create you@example.com` and `.venv/bin/arti token --user you@example.com`
for a JWT; `.venv/bin/arti platform status` for every process (supervised: restarted if it exits); logs in
{settings.data_dir / 'logs'}; stop with ./stop-platform.sh.""")


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    # The benchmark harness lives beside the packages (bench/); the CLI only forwards to it.
    import bench

    return int(bench.main(list(args.bench_args)))


def cmd_types(settings: Settings, args: argparse.Namespace) -> int:
    from arti.toolchain import write_types

    path = write_types()
    print(f"wrote {path} (what `supabase gen types typescript` prints for the migrated database)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="arti", description="ARTi platform backend tooling")
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
        "migrate": "apply pending migrations (supabase/migrations, as `supabase db push` does)",
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
    functions = db_sub.add_parser(
        "functions", help="compare sql_functions/ with the migrated database; --write NAME makes the migration")
    functions.add_argument("--write", metavar="NAME",
                           help="write supabase/migrations/<now>_NAME.sql with the files that differ")
    functions.set_defaults(func=cmd_db_functions)
    queue = db_sub.add_parser("queue-migration",
                              help="write the migration for the installed procrastinate package's schema")
    queue.add_argument("name", help="the migration's name, e.g. procrastinate_3_11")
    queue.set_defaults(func=cmd_db_queue_migration)
    worker = sub.add_parser("worker", help="run a Procrastinate worker (graceful on SIGTERM)")
    worker.add_argument("--concurrency", type=positive_int,
                        help="jobs run at once (default ARTI_WORKER_CONCURRENCY or 4)")
    worker.add_argument("--queue", action="append",
                        help="only these queues (repeatable); default: every queue, plus slots kept for syncs")
    worker.add_argument("--sync-concurrency", type=non_negative_int, metavar="N",
                        help="extra job slots for the sync queue only (default ARTI_WORKER_SYNC_CONCURRENCY or 2; "
                             "0: none)")
    worker.set_defaults(func=cmd_worker)
    sync = sub.add_parser("sync", help="queue provider syncs now")
    target = sync.add_mutually_exclusive_group(required=True)
    target.add_argument("--account", type=uuid_text, help="one connected account id")
    target.add_argument("--org", type=uuid_text, help="every active account of an organization")
    target.add_argument("--all", action="store_true", help="every active account")
    sync.add_argument("--wait", type=positive_seconds, metavar="SECONDS", help="wait for the runs to finish")
    sync.set_defaults(func=cmd_sync)
    plat = sub.add_parser("platform", help="start/stop the whole platform (used by start-platform.sh)")
    plat.add_argument("action", choices=["start", "stop", "status", "supervise"],
                      help="start | stop | status (every process: pid, state, restarts, last exit) | supervise "
                           "(the supervisor process that `start` runs)")
    plat.add_argument("--demo", action="store_true", help="load supabase/seed.sql (idempotent)")
    plat.add_argument("--json", action="store_true", help="status as JSON")
    plat.set_defaults(func=cmd_platform)
    jobs = sub.add_parser("jobs", help="queue depth, running, failed and stalled jobs")
    jobs.add_argument("--failed", action="store_true",
                      help="also list the latest failed attempts with their errors (private.job_failures)")
    jobs.add_argument("--limit", type=positive_int, default=20, help="how many failed attempts to list (default 20)")
    jobs.set_defaults(func=cmd_jobs)
    bench = sub.add_parser("bench", help="run the benchmarks (python -m bench; see bench/README.md)",
                           add_help=False)
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    keys = sub.add_parser("keys", help="the key ring that encrypts provider tokens (ARTI_ENCRYPTION_KEYS)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    generate = keys_sub.add_parser("generate", help="print a new key ring value, or a rotated one with --rotate")
    generate.add_argument("--kid", help="the key's id (default k<date><4 hex>)")
    generate.add_argument("--rotate", action="store_true",
                          help="put the new key in front of the current ARTI_ENCRYPTION_KEYS (old keys still decrypt)")
    generate.set_defaults(func=cmd_keys_generate)
    types = sub.add_parser("types", help="regenerate supabase/types/database.ts from a freshly migrated database "
                           "(postgres-meta as `supabase gen types typescript` runs it)")
    types.set_defaults(func=cmd_types)
    from arti.cli_users import add_commands as add_user_commands

    add_user_commands(sub)
    from arti.cli_webhooks import add_commands as add_webhook_commands

    add_webhook_commands(sub)
    from arti.cli_quota import add_commands as add_quota_commands

    add_quota_commands(sub)
    return parser


def cmd_keys_generate(settings: Settings, args: argparse.Namespace) -> int:
    from arti.crypto import KeySettingError, generate_key_setting

    if args.rotate and not settings.encryption_keys:
        raise ArtiError("--rotate needs the current ARTI_ENCRYPTION_KEYS (environment or .env); without it, "
                        "run `arti keys generate` for a first key ring")
    try:
        value = generate_key_setting(args.kid, settings.encryption_keys if args.rotate else None)
    except (KeySettingError, ValueError) as exc:
        raise ArtiError(f"{exc}") from None
    print(f"ARTI_ENCRYPTION_KEYS={value}")
    print("# keep it secret and backed up: tokens stored with a key cannot be read without it", file=sys.stderr)
    return 0


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        # The benchmark harness has its own options (and --help); everything after `bench` is its.
        import bench

        return int(bench.main(argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ())) or 'settings'}: {err.get('msg', 'invalid')}"
            + (f" (got {err['input']!r})" if isinstance(err.get("input"), str | int | float) else "")
            for err in exc.errors()[:3])
        print(f"arti: error: invalid setting {problems}; fix it in the environment or .env (see .env.example)",
              file=sys.stderr)
        return 2
    try:
        return int(args.func(settings, args))
    except ArtiError as exc:
        print("arti: error: " + _one_line(str(exc)), file=sys.stderr)
        return exc.exit_code
    except psycopg.OperationalError as exc:
        print(f"arti: error: the database is not reachable ({_one_line(str(exc))[:200]}); start it with "
              "`arti db start`, or check SUPABASE_DB_URL", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        message = _one_line(exc.diag.message_primary or str(exc))[:300]
        print(f"arti: error: the database refused: {message} (SQLSTATE {exc.sqlstate}); check the arguments",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
