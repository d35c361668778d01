"""`GET /functions/v1/health`: is the platform able to do its work?

Checks, each with its own `status` (`ok` or `error`) so one failure does not hide the others:

* `database`   — a connection from the pool answers `select 1`;
* `migrations` — every file in supabase/migrations is recorded as applied (pending ones are listed);
* `worker`     — a Procrastinate worker's heartbeat is younger than ARTI_HEALTH_HEARTBEAT_MAX_AGE
                 ("no worker" otherwise: queued syncs would wait forever);
* `queue`      — jobs waiting (`todo`) and how many of them are due now, and the failed attempts of the
                 last hour (private.job_failures: all, and those after which the job gave up), for
                 information: failures alone do not make the platform unhealthy;
* `quota`      — per provider, what the next daily sync needs against its quotas (private.quota_report):
                 accounts, calls, how many fit the daily budgets and how many will wait, and per limit what
                 was spent today and any block a provider announced. Information: always `ok`.

200 `{"status": "ok", ...}` when every check is ok; 503 `{"status": "degraded"}` otherwise, or
`{"status": "unavailable"}` when the database cannot be reached at all. Never a stack trace, never the
database password.

`GET /functions/v1/health/live` only says the process serves requests (always 200, no database): for
container liveness checks, which should not fail because a *worker* is down.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from arti.db import redact
from arti.migrate import discover_migrations
from handlers.db import Conn, fetch_one
from handlers.services import services

log = logging.getLogger("handlers.health")

HEALTH_DB_TIMEOUT = 3.0


def _ok(**details: Any) -> dict[str, Any]:
    return {"status": "ok", **details}


def _error(message: str, **details: Any) -> dict[str, Any]:
    return {"status": "error", "message": message, **details}


async def _migrations(conn: Conn, directory: Any) -> dict[str, Any]:
    row = await fetch_one(conn, "select to_regclass('supabase_migrations.schema_migrations') is not null as tracked")
    applied: set[str] = set()
    if row and row["tracked"]:
        cur = await conn.execute("select version from supabase_migrations.schema_migrations")
        applied = {r["version"] for r in await cur.fetchall()}
    pending = [m.path.name for m in discover_migrations(directory) if m.version not in applied]
    if pending:
        return _error(f"{len(pending)} migration(s) not applied; run `arti db migrate`", pending=pending)
    return _ok(applied=len(applied))


async def _worker(conn: Conn, max_age: float) -> dict[str, Any]:
    row = await fetch_one(
        conn,
        "select count(*) filter (where last_heartbeat > now() - make_interval(secs => %s)) as alive, "
        "extract(epoch from now() - max(last_heartbeat))::float8 as age "
        "from procrastinate.procrastinate_workers",
        (max_age,),
    )
    alive = int(row["alive"]) if row else 0
    age = row["age"] if row else None
    if alive:
        return _ok(alive=alive, last_heartbeat_age_seconds=round(age or 0.0, 1))
    message = f"no worker: no heartbeat within {max_age:.0f} s; start one with `arti worker`"
    return _error(message, alive=0, last_heartbeat_age_seconds=None if age is None else round(age, 1))


async def _queue(conn: Conn) -> dict[str, Any]:
    row = await fetch_one(
        conn,
        "select count(*) as todo, count(*) filter (where scheduled_at is null or scheduled_at <= now()) as due "
        "from procrastinate.procrastinate_jobs where status = 'todo'",
    )
    failed = await fetch_one(
        conn,
        "select count(*) as attempts, count(*) filter (where not will_retry) as gave_up "
        "from private.job_failures where failed_at > now() - interval '1 hour'",
    )
    return _ok(todo=int(row["todo"]) if row else 0, due=int(row["due"]) if row else 0,
               failed_attempts_last_hour=int(failed["attempts"]) if failed else 0,
               gave_up_last_hour=int(failed["gave_up"]) if failed else 0)


async def _quota(conn: Conn) -> dict[str, Any]:
    cur = await conn.execute("select * from private.quota_report() order by provider, scope")
    providers: dict[str, dict[str, Any]] = {}
    for row in await cur.fetchall():
        entry = providers.setdefault(str(row["provider"]), {
            "accounts": int(row["accounts"]), "calls_needed": float(row["calls_needed"]), "fit": int(row["fits"]),
            "will_wait": int(row["deferred"]), "blocked_until": row["blocked_until"].isoformat()
            if row["blocked_until"] else None, "blocked_reason": row["blocked_reason"], "limits": {}})
        entry["limits"][row["scope"]] = {
            "unit": row["unit"], "limit": float(row["quota_limit"]) if row["quota_limit"] is not None else None,
            "window": "daily" if row["resets"] == "daily" else f"{row['window_seconds']} s rolling",
            "per": row["applies_to"], "needed": float(row["units_needed"]), "spent_today": float(row["used_today"]),
            "seconds_at_allowed_rate": float(row["pass_seconds"]) if row["pass_seconds"] is not None else None}
        if row["reported"] is not None:
            entry["reported_usage"] = row["reported"]
    plan_at = await fetch_one(conn, "select private.next_daily_sync_at() as at")
    return _ok(next_daily_sync=plan_at["at"].isoformat() if plan_at else None, providers=providers)


async def _guarded(name: str, check: Any) -> dict[str, Any]:
    try:
        return await check
    except psycopg.Error as exc:
        log.warning("health check %s failed: %s", name, exc)
        return _error(f"{name} check failed: {(exc.diag.message_primary or type(exc).__name__).strip()}")


async def _unreachable_reason(url: str, exc: Exception) -> str:
    """Why no connection: a pool timeout says little, so one direct attempt names the cause (password redacted)."""
    if isinstance(exc, PoolTimeout):
        try:
            probe = await psycopg.AsyncConnection.connect(url, connect_timeout=2)
        except psycopg.Error as direct:
            exc = direct
        else:
            await probe.close()
            return "no free connection in the pool (the database answers; the handlers are overloaded)"
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return redact(first_line).replace(url, redact(url))


async def health(request: Request) -> Response:
    """Database, migrations, worker heartbeat and queue depth; 200 when all ok, else 503."""
    svc = services(request)
    started = time.monotonic()
    checks: dict[str, Any] = {}
    try:
        async with svc.pool.connection(timeout=min(HEALTH_DB_TIMEOUT, svc.db_timeout)) as conn:
            await conn.execute("select 1")
            checks["database"] = _ok()
            checks["migrations"] = await _guarded("migrations", _migrations(conn, svc.settings.migrations_dir))
            checks["worker"] = await _guarded("worker", _worker(conn, svc.settings.health_heartbeat_max_age))
            checks["queue"] = await _guarded("queue", _queue(conn))
            checks["quota"] = await _guarded("quota", _quota(conn))
    except (PoolTimeout, psycopg.OperationalError) as exc:
        reason = await _unreachable_reason(svc.settings.database_url(), exc)
        log.warning("health: database unreachable: %s", reason)
        checks = {"database": _error(f"database unreachable: {reason[:300]}")}
        return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
    if checks.get("quota", {}).get("status") == "error":
        checks["quota"]["status"] = "unknown"  # information only: it never makes the platform unhealthy
    healthy = all(c["status"] in ("ok", "unknown") for c in checks.values())
    body = {"status": "ok" if healthy else "degraded", "checks": checks,
            "elapsed_ms": round((time.monotonic() - started) * 1000, 1)}
    return JSONResponse(body, status_code=200 if healthy else 503)


async def live(request: Request) -> Response:
    """Liveness: the process answers (no dependency is checked)."""
    return JSONResponse({"status": "ok", "service": "handlers"})
