"""The providers' quotas: what each one documents, what a daily sync spends, and the gate every call passes.

**The model** (one `QuotaSpec` per provider, next to its client in arti/providers/, each fact citing the
provider's documentation page):

* `QuotaScope`: one documented limit: what it counts (`calls` or the provider's `units`), the limit (None
  when the provider documents a limit without a number we can plan with), the window (`rolling` seconds, or a
  `daily` window that resets at midnight in a time zone), and whether it is one budget for the `app` or one
  per `account`.
* `Endpoint`: one API call the sync makes: its cost in each scope, how many ids one call takes
  (`batch_max`), and whether it needs the account owner's token.
* `QuotaSpec`: the scopes, the endpoints, and a daily sync's calls: `daily_calls` (per account) and the
  `batched` endpoint (one call per `batch_size` accounts). From these come the per-account and per-batch
  costs the planner uses (`rows()` -> private.provider_quotas and private.provider_sync_costs) and the
  documented minimum of calls per account (`minimum_calls_per_account`).

A fifth provider plugs in with its own spec (scopes + endpoints + daily calls) and the provider enum value;
`ensure_specs` writes its rows (the worker does on its first sync, `arti quota` on every run).

**Enforcement**, in Postgres and so shared by every worker process (functions in sql_functions/sync/):

* app-wide rolling scopes with a limit pace every call (`private.take_provider_call`: GCRA, one call per
  `(window + lateness) / (limit - 1)` seconds, so no rolling window ever sees more than `limit` calls even
  when a paced call arrives up to `lateness_seconds` late);
* app-wide daily scopes with a limit are a budget: a sync reserves its per-account cost before its first call
  (`private.begin_sync_quota`), a batched call is charged before it is made; what does not fit waits for the
  reset (the run is *deferred*, with the reason, never failed half-way);
* what the provider announces (YouTube `quotaExceeded`, a 429 with Retry-After, Instagram's usage headers)
  blocks the provider, or the account, for every worker until the time it gives (`QuotaGate.announce`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

logger = logging.getLogger(__name__)

ROLLING = "rolling"
DAILY = "daily"
MAX_INLINE_WAIT_SECONDS = 30.0
"""A paced call waits in its job up to this long; a longer wait (a block) defers the run instead."""


# --------------------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class QuotaScope:
    """One documented limit of a provider."""

    name: str
    unit: str
    limit: float | None
    window_seconds: int
    resets: str
    source: str
    note: str
    reset_time_zone: str | None = None
    applies_to: str = "app"
    lateness_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.unit not in ("calls", "units") or self.resets not in (ROLLING, DAILY):
            raise ValueError(f"scope {self.name}: unit is calls|units, resets is rolling|daily")
        if self.resets == DAILY and not self.reset_time_zone:
            raise ValueError(f"scope {self.name}: a daily scope needs the time zone whose midnight resets it")
        if self.applies_to not in ("app", "account"):
            raise ValueError(f"scope {self.name}: applies_to is app|account")

    @property
    def paces(self) -> bool:
        """An app-wide rolling window with a number: every call is paced against it."""
        return self.resets == ROLLING and self.applies_to == "app" and self.limit is not None

    @property
    def budgets(self) -> bool:
        """An app-wide daily budget with a number: spent before each call, the rest waits for the reset."""
        return self.resets == DAILY and self.applies_to == "app" and self.limit is not None


@dataclass(frozen=True)
class Endpoint:
    """One API call a sync makes: `pattern` matches "METHOD URL" (the URL without its query)."""

    name: str
    pattern: str
    costs: Mapping[str, float]
    source: str
    batch_max: int = 1
    owner_token: bool = False

    def matches(self, method: str, url: str) -> bool:
        return re.fullmatch(self.pattern, f"{method.upper()} {url}") is not None


@dataclass(frozen=True)
class QuotaSpec:
    """A provider's quota model and what one account's daily sync spends in it."""

    provider: str
    scopes: tuple[QuotaScope, ...]
    endpoints: tuple[Endpoint, ...]
    daily_calls: Mapping[str, float]
    note: str
    batched: str | None = None
    batch_size: int = 1
    by_name: dict[str, Endpoint] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {e.name: e for e in self.endpoints})
        scopes = {s.name for s in self.scopes}
        for endpoint in self.endpoints:
            unknown = set(endpoint.costs) - scopes
            if unknown:
                raise ValueError(f"{self.provider}: endpoint {endpoint.name} costs unknown scope(s) {unknown}")
        missing = (set(self.daily_calls) | ({self.batched} if self.batched else set())) - set(self.by_name)
        if missing:
            raise ValueError(f"{self.provider}: daily calls name unknown endpoint(s) {missing}")
        if self.batched and not 1 < self.batch_size <= self.by_name[self.batched].batch_max:
            raise ValueError(f"{self.provider}: batch_size must be 2..{self.by_name[self.batched].batch_max}")

    def scope(self, name: str) -> QuotaScope:
        return next(s for s in self.scopes if s.name == name)

    def endpoint_for(self, method: str, url: str | httpx.URL) -> Endpoint | None:
        """The endpoint a request is (None for calls outside the quotas, e.g. OAuth token endpoints)."""
        bare = str(url).split("?", 1)[0]
        return next((e for e in self.endpoints if e.matches(method, bare)), None)

    def per_account(self, scope: str) -> float:
        return sum(count * self.by_name[name].costs.get(scope, 0) for name, count in self.daily_calls.items())

    def per_batch(self, scope: str) -> float:
        return self.by_name[self.batched].costs.get(scope, 0) if self.batched else 0.0

    @property
    def calls_per_account(self) -> float:
        return float(sum(self.daily_calls.values()))

    @property
    def calls_per_batch(self) -> float:
        return 1.0 if self.batched else 0.0

    @property
    def owner_calls_per_account(self) -> float:
        return float(sum(c for name, c in self.daily_calls.items() if self.by_name[name].owner_token))

    def minimum_calls_per_account(self, accounts: int) -> float:
        """The documented minimum of calls per account for `accounts` accounts' daily syncs."""
        if accounts <= 0:
            return 0.0
        batches = -(-accounts // self.batch_size) if self.batched else 0
        return self.calls_per_account + batches * self.calls_per_batch / accounts

    def rows(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The rows of private.provider_quotas and private.provider_sync_costs this spec stands for."""
        quotas = [{
            "provider": self.provider, "scope": s.name, "unit": s.unit, "quota_limit": s.limit,
            "window_seconds": s.window_seconds, "resets": s.resets, "reset_time_zone": s.reset_time_zone,
            "applies_to": s.applies_to, "per_account": self.per_account(s.name), "per_batch": self.per_batch(s.name),
            "lateness_seconds": s.lateness_seconds, "source": s.source, "note": s.note,
        } for s in self.scopes]
        costs = {"provider": self.provider, "batch_size": self.batch_size if self.batched else 1,
                 "calls_per_account": self.calls_per_account, "calls_per_batch": self.calls_per_batch,
                 "owner_calls_per_account": self.owner_calls_per_account, "note": self.note}
        return quotas, costs


def all_specs() -> dict[str, QuotaSpec]:
    """Every provider's spec, by provider name (from the registry's client classes)."""
    from arti.providers.registry import PROVIDERS

    return {name: cls.quota for name, cls in PROVIDERS.items() if getattr(cls, "quota", None) is not None}


ENSURE_QUOTA_SQL = """
insert into private.provider_quotas as q (provider, scope, unit, quota_limit, window_seconds, resets, reset_time_zone,
    applies_to, per_account, per_batch, lateness_seconds, source, note)
values (%(provider)s, %(scope)s, %(unit)s, %(quota_limit)s, %(window_seconds)s, %(resets)s, %(reset_time_zone)s,
    %(applies_to)s, %(per_account)s, %(per_batch)s, %(lateness_seconds)s, %(source)s, %(note)s)
on conflict (provider, scope) do update set unit = excluded.unit, window_seconds = excluded.window_seconds,
    resets = excluded.resets, reset_time_zone = excluded.reset_time_zone, applies_to = excluded.applies_to,
    per_account = excluded.per_account, per_batch = excluded.per_batch, source = excluded.source,
    note = excluded.note, updated_at = now()
where (q.unit, q.window_seconds, q.resets, q.reset_time_zone, q.applies_to, q.per_account, q.per_batch, q.source,
       q.note) is distinct from (excluded.unit, excluded.window_seconds, excluded.resets, excluded.reset_time_zone,
       excluded.applies_to, excluded.per_account, excluded.per_batch, excluded.source, excluded.note)
"""
ENSURE_COSTS_SQL = """
insert into private.provider_sync_costs as c (provider, batch_size, calls_per_account, calls_per_batch,
    owner_calls_per_account, note)
values (%(provider)s, %(batch_size)s, %(calls_per_account)s, %(calls_per_batch)s, %(owner_calls_per_account)s,
    %(note)s)
on conflict (provider) do update set batch_size = excluded.batch_size, calls_per_account = excluded.calls_per_account,
    calls_per_batch = excluded.calls_per_batch, owner_calls_per_account = excluded.owner_calls_per_account,
    note = excluded.note, updated_at = now()
where (c.batch_size, c.calls_per_account, c.calls_per_batch, c.owner_calls_per_account, c.note)
    is distinct from (excluded.batch_size, excluded.calls_per_account, excluded.calls_per_batch,
                      excluded.owner_calls_per_account, excluded.note)
"""


def _ensure_statements(specs: Mapping[str, QuotaSpec]) -> list[tuple[str, dict[str, Any]]]:
    statements: list[tuple[str, dict[str, Any]]] = []
    for spec in specs.values():
        quotas, costs = spec.rows()
        statements += [(ENSURE_QUOTA_SQL, row) for row in quotas]
        statements.append((ENSURE_COSTS_SQL, costs))
        statements.append(("insert into private.provider_quota_state (provider) values (%(provider)s) "
                           "on conflict do nothing", {"provider": spec.provider}))
    return statements


def ensure_specs(conn: Any, specs: Mapping[str, QuotaSpec] | None = None) -> None:
    """Write the specs' rows (a sync psycopg connection). Operators' quota_limit and lateness_seconds are kept."""
    for sql, params in _ensure_statements(specs or all_specs()):
        conn.execute(sql, params)


_ensured: set[str] = set()


async def ensure_specs_async(conn: Any, specs: Mapping[str, QuotaSpec] | None = None) -> None:
    """The same on an async connection, once per process and database."""
    key = str(getattr(getattr(conn, "info", None), "dsn", ""))
    if key in _ensured:
        return
    for sql, params in _ensure_statements(specs or all_specs()):
        await conn.execute(sql, params)
    _ensured.add(key)


# --------------------------------------------------------------------------------------------- runtime


class QuotaDeferred(Exception):
    """The sync cannot spend what it needs now: it waits until `until` (the reason goes to sync_runs)."""

    def __init__(self, until: dt.datetime, reason: str) -> None:
        self.until = until
        self.reason = reason[:500]
        super().__init__(f"deferred until {until.isoformat()}: {self.reason}")


@dataclass
class UsageReport:
    """What a provider reported about its limits in one response (e.g. Meta's usage headers)."""

    app: dict[str, Any] | None = None
    """App-wide usage (percentages), e.g. X-App-Usage."""
    app_blocked_seconds: float | None = None
    """The provider says the whole app is throttled for this long (or at 100 %: a pause)."""
    account: dict[str, Any] | None = None
    """This account's usage, e.g. its X-Business-Use-Case-Usage entries."""
    account_blocked_seconds: float | None = None
    """The provider says this account is throttled for this long (estimated_time_to_regain_access)."""


def _decision(row: Mapping[str, Any] | None) -> dict[str, Any]:
    value = row["decision"] if row else None
    if isinstance(value, str):
        value = json.loads(value)
    return dict(value or {})


def _until(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


class QuotaGate:
    """Every provider call of one sync passes here: pacing, budgets and blocks, all in Postgres.

    Bound to the sync's own (autocommit) connection. A provider client calls `before` and `after` around each
    request (`ProviderClient.observer`); the sync hands `accept` the answer of private.begin_sync_quota before
    anything else, and calls `announce` with a provider's rate-limit error.
    """

    def __init__(self, conn: Any, spec: QuotaSpec, account_id: Any) -> None:
        self.conn = conn
        self.spec = spec
        self.account_id = str(account_id)
        self.enforced: set[str] | None = None
        """Scopes with an app-wide limit (from accept): a call costing in one is paced or charged in Postgres."""
        self.tally: dict[str, dict[str, float]] = {}
        """Calls in the other scopes, counted here and recorded once (`flush_params`)."""
        self._last_report: float = 0.0

    def accept(self, decision: Mapping[str, Any] | str | None) -> None:
        """The answer of private.begin_sync_quota (run by the caller, in the sync's first statement): this account's
        daily cost reserved in the daily budgets, or QuotaDeferred raised when it does not fit."""
        value = _decision({"decision": decision})
        if value.get("deferred_until"):
            raise QuotaDeferred(_until(value["deferred_until"]), value.get("reason") or "quota")
        self.enforced = set(value.get("enforced") or [])

    def flush_params(self) -> tuple[str, str] | None:
        """(provider, tally JSON) for private.record_provider_calls, or None when nothing was only counted."""
        return (self.spec.provider, json.dumps(self.tally)) if self.tally else None

    async def before(self, method: str, url: str | httpx.URL) -> None:
        """Pace and charge one call; sleep for the pacing, or raise QuotaDeferred when it must wait longer."""
        endpoint = self.spec.endpoint_for(method, url)
        if endpoint is None:
            return
        if self.enforced is not None and not self.enforced.intersection(endpoint.costs):
            # Nothing app-wide limits this call (blocks were checked when the sync began): count it, no round trip.
            for scope, units in endpoint.costs.items():
                entry = self.tally.setdefault(scope, {"used": 0.0, "calls": 0})
                entry["used"] += units
                entry["calls"] += 1
            return
        while True:
            cur = await self.conn.execute("select private.take_provider_call(%s, %s, %s) as decision",
                                          (self.spec.provider, self.account_id, json.dumps(dict(endpoint.costs))))
            decision = _decision(await cur.fetchone())
            if decision.get("deferred_until"):
                until = _until(decision["deferred_until"])
                wait = (until - dt.datetime.now(dt.UTC)).total_seconds()
                if wait > MAX_INLINE_WAIT_SECONDS or not decision.get("retry"):
                    raise QuotaDeferred(until, decision.get("reason") or "quota")
                await asyncio.sleep(max(0.0, wait))
                continue
            wait = float(decision.get("wait") or 0.0)
            if wait > 0:
                await asyncio.sleep(wait)
            return

    async def after(self, method: str, url: str | httpx.URL, response: httpx.Response, report: UsageReport | None
                    ) -> None:
        """Act on what the provider reported: block the account or the app when it says so; record usage."""
        if report is None:
            return
        if report.account_blocked_seconds:
            await self.block_account(report.account_blocked_seconds, "the provider reports this account's usage at "
                                     f"its limit: {json.dumps(report.account, sort_keys=True)[:300]}", report.account)
        if report.app_blocked_seconds:
            await self.block_provider(report.app_blocked_seconds, "the provider reports the app's usage at its "
                                      f"limit: {json.dumps(report.app, sort_keys=True)[:300]}")
        now = time.monotonic()
        if report.app is not None and now - self._last_report > 30:
            self._last_report = now
            await self.conn.execute("select private.record_provider_usage(%s, %s)",
                                    (self.spec.provider, json.dumps(report.app)))

    async def block_provider(self, seconds: float, reason: str, *, scope: str | None = None) -> dt.datetime:
        cur = await self.conn.execute(
            "select private.block_provider_quota(%s, now() + make_interval(secs => %s), %s, %s) as until",
            (self.spec.provider, max(1.0, seconds), reason[:500], scope))
        row = await cur.fetchone()
        return _until(row["until"])

    async def block_account(self, seconds: float, reason: str, reported: Mapping[str, Any] | None = None
                            ) -> dt.datetime:
        cur = await self.conn.execute(
            "select private.block_account_quota(%s, now() + make_interval(secs => %s), %s, %s) as until",
            (self.account_id, max(1.0, seconds), reason[:500], json.dumps(reported) if reported else None))
        row = await cur.fetchone()
        return _until(row["until"])

    async def announce(self, seconds: float | None, reason: str, *, applies_to: str = "app",
                       scope: str | None = None) -> QuotaDeferred:
        """A provider said stop (quota exhausted, 429): block it (or the account) for every worker; the deferral."""
        wait = seconds if seconds and seconds > 0 else 60.0
        if applies_to == "account":
            until = await self.block_account(wait, reason)
        else:
            until = await self.block_provider(wait, reason, scope=scope)
        return QuotaDeferred(until, reason)


# --------------------------------------------------------------------------------------------- reports


PLAN_SQL = "select * from private.quota_report(%s) order by provider, scope"


def quota_report(conn: Any, at: dt.datetime | None = None) -> list[dict[str, Any]]:
    """private.quota_report rows (a sync connection): per provider and scope, what the next daily pass needs."""
    return list(conn.execute(PLAN_SQL, (at,)).fetchall())
