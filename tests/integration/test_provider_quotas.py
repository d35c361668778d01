"""Quota-aware syncs (issue 18): batching, budgets and blocks shared by worker processes, deferrals reported.

Real `arti worker` processes sync through ARTI_PROVIDER_GATEWAY against bench.fake_providers, which answers as the
providers document (YouTube's channels.list by id and its quotaExceeded 403, Spotify's several artists, the
usage headers) and counts every call that reaches it.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from arti.crypto import TokenCipher, generate_key_setting
from arti.providers.base import TokenSet
from arti.quotas import all_specs
from arti.settings import PROJECT_ROOT
from arti.tokens import SAVE_SQL, token_params
from bench.fake_providers import QuotaFakeProviders, external_id, token_for
from tests.harness import TestDB, child_env, wait_until

KEYS = generate_key_setting("k1")
PROVIDER_ENV = {f"{p.upper()}_{part}": f"{p}-{part.lower()}" for p in ("spotify", "youtube", "instagram", "soundcloud")
                for part in ("CLIENT_ID", "CLIENT_SECRET")}
PACIFIC = ZoneInfo("America/Los_Angeles")


def next_pacific_midnight() -> dt.datetime:
    local = dt.datetime.now(PACIFIC)
    return dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tzinfo=PACIFIC)


@pytest.fixture
def quota_state(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """The quota tables as they were: every test here changes limits, spends budgets or blocks providers."""
    saved = conn.execute("select provider, scope, quota_limit, lateness_seconds from private.provider_quotas"
                         ).fetchall()
    try:
        yield
    finally:
        for row in saved:
            conn.execute("update private.provider_quotas set quota_limit = %(quota_limit)s, lateness_seconds = "
                         "%(lateness_seconds)s, next_call_at = '-infinity' where provider = %(provider)s and "
                         "scope = %(scope)s", row)
        conn.execute("delete from private.provider_quota_usage")
        conn.execute("update private.provider_quota_state set blocked_until = null, blocked_reason = null, "
                     "reported = null, reported_at = null")


@pytest.fixture
def world(conn: psycopg.Connection[Any], quota_state: None) -> Iterator[Callable[..., dict[str, Any]]]:
    """make(provider, n): a committed organization with n accounts of `provider`, tokens `tok-<external id>`."""
    orgs: list[Any] = []
    cipher = TokenCipher.from_setting(KEYS)

    def make(provider: str, n: int, *, next_sync_at: str | None = None) -> dict[str, Any]:
        tag = uuid.uuid4().hex[:8]
        org = conn.execute("insert into public.organizations (name, slug) values ('Quota', %s) returning id",
                           (f"quota-{tag}",)).fetchone()["id"]
        orgs.append(org)
        artist = conn.execute("insert into public.artists (org_id, name) values (%s, 'Q') returning id",
                              (org,)).fetchone()["id"]
        base = int(tag, 16) % 10**6 * 1000
        accounts = []
        for i in range(n):
            ext = external_id(provider, base + i)
            account = conn.execute(
                "insert into public.connected_accounts (org_id, artist_id, provider, external_id, last_synced_at, "
                "next_sync_at) values (%s, %s, %s, %s, now() - interval '1 day', %s) returning id",
                (org, artist, provider, ext, next_sync_at)).fetchone()["id"]
            tokens = TokenSet(access_token=token_for(ext), refresh_token="r",
                              expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
            conn.execute(SAVE_SQL, token_params(cipher, account, tokens))
            accounts.append({"id": account, "external_id": ext})
        return {"org": org, "accounts": accounts}

    yield make
    for org in orgs:
        conn.execute("delete from procrastinate.procrastinate_jobs where args ->> 'sync_run_id' in "
                     "(select id::text from public.sync_runs where org_id = %s) or args ->> 'account_id' in "
                     "(select id::text from public.connected_accounts where org_id = %s)", (org, org))
        conn.execute("delete from public.organizations where id = %s", (org,))
    conn.execute("delete from private.sync_batches where not exists "
                 "(select 1 from private.sync_batch_items as i where i.batch_id = sync_batches.id)")


@pytest.fixture
def fake() -> Iterator[QuotaFakeProviders]:
    with QuotaFakeProviders(latency=(0.05, 0.1)) as server:
        yield server


@pytest.fixture
def start_worker(database_url: str, fake: QuotaFakeProviders) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(concurrency: int = 3) -> subprocess.Popen[str]:
        env = child_env(SUPABASE_DB_URL=database_url, ARTI_ENCRYPTION_KEYS=KEYS, ARTI_PROVIDER_GATEWAY=fake.url,
                        ARTI_STALLED_WORKER_SECONDS="3", **PROVIDER_ENV)
        proc = subprocess.Popen([sys.executable, "-m", "arti.cli", "worker", "--queue", "sync", "--concurrency",
                                 str(concurrency)], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def runs(conn: psycopg.Connection[Any], org: Any) -> list[dict[str, Any]]:
    return conn.execute(
        "select r.id, a.external_id, r.status::text as status, r.error, r.deferred_until, r.deferred_reason "
        "from public.sync_runs as r join public.connected_accounts as a on a.id = r.account_id "
        "where r.org_id = %s order by a.external_id", (org,)).fetchall()


def settled(conn: psycopg.Connection[Any], org: Any, total: int) -> list[dict[str, Any]] | None:
    """The org's runs once every one has finished or been deferred (a queued run with a reason)."""
    found = runs(conn, org)
    done = [r for r in found if r["status"] in ("succeeded", "failed") or r["deferred_reason"]]
    running = conn.execute("select count(*) as n from procrastinate.procrastinate_jobs as j join public.sync_runs "
                           "as r on r.id = (j.args ->> 'sync_run_id')::uuid where r.org_id = %s and "
                           "j.status = 'doing'", (org,)).fetchone()["n"]
    return found if len(found) == total and len(done) == total and not running else None


def wait_for_workers(conn: psycopg.Connection[Any], n: int) -> None:
    wait_until(lambda: conn.execute("select count(*) >= %s as up from procrastinate.procrastinate_workers "
                                    "where last_heartbeat > now() - interval '5 seconds'", (n,)).fetchone()["up"],
               timeout=30, what=f"{n} workers to start")


def manual_syncs(conn: psycopg.Connection[Any], accounts: list[dict[str, Any]]) -> None:
    for account in accounts:
        conn.execute("select private.enqueue_sync(%s, 'manual')", (account["id"],))


# --------------------------------------------------------------------------------------------- the model in SQL


def test_the_migration_holds_the_providers_specs(db: TestDB) -> None:
    """private.provider_quotas / provider_sync_costs are what arti/providers/* declare (the limits included)."""
    for spec in all_specs().values():
        quotas, costs = spec.rows()
        for row in quotas:
            stored = db.one("select unit, quota_limit, window_seconds, resets, reset_time_zone, applies_to, "
                            "per_account, per_batch, lateness_seconds, source, note from private.provider_quotas "
                            "where provider = %(provider)s and scope = %(scope)s", row)
            assert stored is not None, row["scope"]
            expected = {k: row[k] for k in stored}
            assert {k: (float(v) if isinstance(v, int | float) or hasattr(v, "as_integer_ratio") else v)
                    for k, v in stored.items()} == {k: (float(v) if isinstance(v, int | float) else v)
                                                    for k, v in expected.items()}
        stored_costs = db.one("select batch_size, calls_per_account, calls_per_batch, owner_calls_per_account, note "
                              "from private.provider_sync_costs where provider = %(provider)s", costs)
        assert stored_costs is not None
        assert {k: (float(v) if not isinstance(v, str) else v) for k, v in stored_costs.items()} == {
            k: (float(costs[k]) if not isinstance(costs[k], str) else costs[k]) for k in stored_costs}


def test_the_plan_batches_and_defers_what_does_not_fit_the_daily_budget(db: TestDB) -> None:
    """120 due YouTube channels with 2 Data API units left: 2 batches of 50 fit, 20 wait for midnight Pacific."""
    org = db.value("insert into public.organizations (name, slug) values ('Plan', %s) returning id",
                   (f"plan-{uuid.uuid4().hex[:8]}",))
    artist = db.value("insert into public.artists (org_id, name) values (%s, 'P') returning id", (org,))
    db.execute("insert into public.connected_accounts (org_id, artist_id, provider, external_id) "
               "select %s, %s, 'youtube', 'UCplan' || lpad(g::text, 17, '0') from generate_series(1, 120) as g",
               (org, artist))
    db.execute("update public.connected_accounts set status = 'revoked' where org_id <> %s", (org,))
    db.execute("update private.provider_quotas set quota_limit = 2 where provider = 'youtube' "
               "and scope = 'data_api_daily'")

    assert db.value("select private.enqueue_due_syncs()") == 120
    planned = db.execute("select r.deferred_until, r.deferred_reason, j.scheduled_at from public.sync_runs as r "
                         "join procrastinate.procrastinate_jobs as j on (j.args ->> 'sync_run_id')::uuid = r.id "
                         "where r.org_id = %s", (org,))
    deferred = [r for r in planned if r["deferred_reason"]]
    assert len(planned) == 120 and len(deferred) == 20
    midnight = next_pacific_midnight()
    assert all(r["deferred_until"] == midnight and r["scheduled_at"] == midnight for r in deferred)
    assert "youtube data_api_daily: 2 units a day, 0 spent; 100 of 120 accounts fit" in deferred[0]["deferred_reason"]
    batches = db.execute("select b.id, count(*) as n from private.sync_batches as b join private.sync_batch_items as i "
                         "on i.batch_id = b.id join public.connected_accounts as a on a.id = i.account_id "
                         "where a.org_id = %s group by b.id order by n", (org,))
    assert [b["n"] for b in batches] == [50, 50]

    report = {r["scope"]: r for r in db.execute("select * from private.quota_report(now()) where provider = 'youtube'")}
    data = report["data_api_daily"]
    assert (data["accounts"], data["fits"], data["deferred"]) == (120, 100, 20)
    assert float(data["units_needed"]) == 3 and float(data["calls_needed"]) == 123  # 120 reports + 3 batches
    listed = db.execute("select * from private.quota_deferred_accounts(now(), 100)")
    assert len(listed) == 20 and all(r["provider"] == "youtube" and r["deferred_until"] == midnight for r in listed)


def test_a_blocked_provider_defers_the_whole_plan_with_its_reason(db: TestDB) -> None:
    org = db.value("insert into public.organizations (name, slug) values ('Plan', %s) returning id",
                   (f"plan-{uuid.uuid4().hex[:8]}",))
    artist = db.value("insert into public.artists (org_id, name) values (%s, 'P') returning id", (org,))
    db.execute("insert into public.connected_accounts (org_id, artist_id, provider, external_id) "
               "values (%s, %s, 'spotify', '0blocked1'), (%s, %s, 'spotify', '0blocked2')", (org, artist, org, artist))
    db.execute("update public.connected_accounts set status = 'revoked' where org_id <> %s", (org,))
    until = db.value("select private.block_provider_quota('spotify', now() + interval '1 hour', "
                     "'spotify asked us to wait: API rate limit exceeded')")
    db.execute("select private.enqueue_due_syncs()")
    rows = db.execute("select deferred_until, deferred_reason from public.sync_runs where org_id = %s", (org,))
    assert len(rows) == 2
    assert all(r["deferred_until"] == until and "API rate limit exceeded" in r["deferred_reason"] for r in rows)


# --------------------------------------------------------------------------------------------- with workers


def test_batches_of_50_with_some_channels_gone(conn: psycopg.Connection[Any], world: Any, fake: QuotaFakeProviders,
                                               start_worker: Any) -> None:
    made = world("youtube", 60)
    gone = {made["accounts"][i]["external_id"] for i in (5, 30, 59)}
    fake.gone |= gone
    start_worker(4)
    assert conn.execute("select private.enqueue_due_syncs() as n").fetchone()["n"] >= 60
    found = wait_until(lambda: settled(conn, made["org"], 60), timeout=90, what="60 YouTube syncs")

    assert fake.calls[("youtube", "channels.list")] == 2  # 50 + 10 channels: 2 units, not 60
    assert fake.calls[("youtube", "reports.query")] == 57  # the owner's report, for each channel still there
    by_status = {r["external_id"]: r for r in found}
    assert {e for e, r in by_status.items() if r["status"] == "failed"} == gone
    for ext in gone:
        assert "no channel" in by_status[ext]["error"]
    assert sum(r["status"] == "succeeded" for r in found) == 57
    assert not fake.violations
    units = conn.execute("select used, calls from private.provider_quota_usage where provider = 'youtube' "
                         "and scope = 'data_api_daily'").fetchone()
    assert (float(units["used"]), units["calls"]) == (2.0, 2)


def test_the_daily_budget_is_shared_by_two_worker_processes(conn: psycopg.Connection[Any], world: Any,
                                                            fake: QuotaFakeProviders, start_worker: Any) -> None:
    """5 Data API units left for 12 manual syncs (each its own channels.list): 5 run, across two workers; 7 wait."""
    made = world("youtube", 12)
    conn.execute("update private.provider_quotas set quota_limit = 5 where provider = 'youtube' "
                 "and scope = 'data_api_daily'")
    fake.latency = (0.3, 0.4)  # calls overlap: both workers are at it at once
    start_worker(3)
    start_worker(3)
    wait_for_workers(conn, 2)
    manual_syncs(conn, made["accounts"])
    found = wait_until(lambda: settled(conn, made["org"], 12), timeout=90, what="12 syncs to run or wait")

    assert fake.calls[("youtube", "channels.list")] == 5
    assert sum(r["status"] == "succeeded" for r in found) == 5
    waiting = [r for r in found if r["status"] == "queued"]
    assert len(waiting) == 7 and not [r for r in found if r["status"] == "failed"]
    midnight = next_pacific_midnight()
    for run in waiting:
        assert run["deferred_until"] == midnight
        assert "youtube data_api_daily: 5 of 5 units spent today" in run["deferred_reason"]
    workers = conn.execute("select count(distinct j.worker_id) as n from procrastinate.procrastinate_jobs as j "
                           "join public.sync_runs as r on r.id = (j.args ->> 'sync_run_id')::uuid "
                           "where r.org_id = %s and j.worker_id is not null", (made["org"],)).fetchone()["n"]
    assert workers == 2  # both processes ran syncs against the one budget
    assert not fake.violations


def test_exhaustion_announced_by_youtube_stops_every_worker_until_the_reset(
        conn: psycopg.Connection[Any], world: Any, fake: QuotaFakeProviders, start_worker: Any) -> None:
    """The project's quota is spent elsewhere: YouTube answers quotaExceeded. Nobody calls it again before midnight
    Pacific; every run waits for then, with the reason; at the reset they go on."""
    made = world("youtube", 10)
    fake.youtube_daily_units = 1
    start_worker(3)
    start_worker(3)
    wait_for_workers(conn, 2)
    manual_syncs(conn, made["accounts"])
    found = wait_until(lambda: settled(conn, made["org"], 10), timeout=90, what="10 syncs to run or wait")

    refused = [t for t, provider, _, status in fake.log if provider == "youtube" and status == 403]
    assert refused, "YouTube never said quotaExceeded"
    first = min(refused)
    later = [t for t, provider, _, _ in fake.log if provider == "youtube" and t > first + 0.5]
    assert later == []  # calls in flight when it answered may land; none was made after the block was recorded
    assert fake.calls[("youtube", "channels.list")] <= 1 + 6  # at most one per worker slot was already under way
    midnight = next_pacific_midnight()
    waiting = [r for r in found if r["status"] == "queued"]
    assert len(waiting) == 10 - sum(r["status"] == "succeeded" for r in found) and waiting
    assert not [r for r in found if r["status"] == "failed"]
    for run in waiting:
        assert run["deferred_until"] == midnight and run["error"] is None
        assert "youtube asked us to wait: The request cannot be completed because you have exceeded your" in (
            run["deferred_reason"])
    state = conn.execute("select blocked_until from private.provider_quota_state where provider = 'youtube'").fetchone()
    assert state["blocked_until"] == midnight
    jobs = conn.execute("select j.scheduled_at from procrastinate.procrastinate_jobs as j join public.sync_runs as r "
                        "on r.id = (j.args ->> 'sync_run_id')::uuid where r.org_id = %s and j.status = 'todo'",
                        (made["org"],)).fetchall()
    assert len(jobs) == len(waiting) and all(j["scheduled_at"] == midnight for j in jobs)

    # Midnight Pacific: a new day of quota at YouTube; the block ends and the waiting runs go on.
    fake.youtube_units.clear()
    fake.youtube_daily_units = 10_000
    conn.execute("update private.provider_quota_state set blocked_until = now() where provider = 'youtube'")
    conn.execute("delete from private.provider_quota_usage where provider = 'youtube'")
    conn.execute("update procrastinate.procrastinate_jobs set scheduled_at = now() where status = 'todo' and "
                 "(args ->> 'sync_run_id')::uuid in (select id from public.sync_runs where org_id = %s)",
                 (made["org"],))
    wait_until(lambda: all(r["status"] == "succeeded" for r in runs(conn, made["org"])), timeout=60,
               what="the deferred syncs to run after the reset")


def test_pacing_never_lets_a_rolling_window_see_more_than_the_limit(db: TestDB) -> None:
    """Spotify's rolling 30 s: 40 calls taken at once with a limit of 12 are spaced so that, even when each one
    reaches Spotify up to lateness_seconds late, no 30-second window holds more than 12 (GCRA, every worker)."""
    db.execute("update private.provider_quotas set quota_limit = 12, lateness_seconds = 1, next_call_at = '-infinity'"
               " where provider = 'spotify' and scope = 'rolling_30s'")
    waits, slots = [], []
    for _ in range(40):
        decision = db.value("select private.take_provider_call('spotify', null, '{\"rolling_30s\": 1}')")
        waits.append(decision["wait"])
        slots.append(db.value("select extract(epoch from next_call_at) from private.provider_quotas "
                              "where provider = 'spotify' and scope = 'rolling_30s'"))
    interval = (30 + 1) / (12 - 1)
    calls = [float(s) - interval for s in slots]  # when each call may start
    assert waits[0] == 0 and waits[-1] > 39 * interval - 1
    for k in range(len(calls) - 12):
        # 13 calls span more than the window plus the lateness allowed to each: never 13 arrivals in 30 s.
        assert calls[k + 12] - calls[k] >= 30 + 1 + interval - 1e-6
    used = db.one("select used, calls from private.provider_quota_usage where provider = 'spotify' "
                  "and scope = 'rolling_30s' and period_start = date_trunc('day', now() at time zone 'UTC') "
                  "at time zone 'UTC'")
    assert (float(used["used"]), used["calls"]) == (40.0, 40)


def test_arti_quota_prints_tomorrows_needs_against_the_budgets(conn: psycopg.Connection[Any], world: Any,
                                                              database_url: str) -> None:
    """The needs of the next daily sync per provider, the limits, today's use, and the accounts that will not fit."""
    youtube = world("youtube", 120, next_sync_at="2000-01-01")
    world("spotify", 7, next_sync_at="2000-01-01")
    conn.execute("update private.provider_quotas set quota_limit = 2 where provider = 'youtube' "
                 "and scope = 'data_api_daily'")
    conn.execute("update private.provider_quota_usage set used = 0 where provider = 'youtube'")
    others = conn.execute("select count(*) filter (where provider = 'youtube') as youtube, count(*) filter "
                          "(where provider = 'spotify') as spotify from public.connected_accounts "
                          "where status = 'active'").fetchone()
    result = subprocess.run([sys.executable, "-m", "arti.cli", "quota", "--limit", "3"], capture_output=True,
                            text=True, env=child_env(SUPABASE_DB_URL=database_url), cwd=PROJECT_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("daily sync at ")
    youtube_line = next(line for line in lines if line.startswith("youtube"))
    data_line = next(line for line in lines if "data_api_daily" in line)
    waits = others["youtube"] - 100
    assert youtube_line.split()[1:3] == [f"{others['youtube']:,}", f"{others['youtube'] + 3:,}"]
    assert "2 units/day (from 00:00 P" in data_line and data_line.split()[-1] == "-"
    assert youtube_line.split()[-3:] == ["100", f"{waits}", "-"]  # fit, will wait, no pacing
    spotify_line = next(line for line in lines if line.startswith("spotify"))
    assert "180 calls/30 s rolling" in spotify_line and spotify_line.endswith(" s")  # the time at the allowed rate
    assert f"accounts that will not fit: {waits} (the first 3)" in lines
    listed = [line for line in lines if line.startswith("  youtube")]
    assert len(listed) == 3
    ids = {a["external_id"] for a in youtube["accounts"]}
    assert all(line.split()[1] in ids and "data_api_daily" in line for line in listed)

    as_json = subprocess.run([sys.executable, "-m", "arti.cli", "quota", "--json"], capture_output=True, text=True,
                             env=child_env(SUPABASE_DB_URL=database_url), cwd=PROJECT_ROOT, timeout=120)
    figures = json.loads(as_json.stdout)
    assert figures["deferred_total"] == waits
    assert {(r["provider"], r["scope"]) for r in figures["scopes"]} >= {("youtube", "data_api_daily"),
                                                                         ("spotify", "rolling_30s")}
