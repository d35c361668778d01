"""sync_at_scale: a whole daily sync pass of the dataset's size through real HTTP, against the quota floor.

The world: as many accounts as the dataset has (10,000 full size, 200 small), in the generator's provider mix
(bench.generate's Zipf-sized organizations, providers cycling per organization: 2,404 Spotify, 2,318 YouTube,
2,070 Instagram, 1,693 SoundCloud and 1,515 TikTok at full size), with encrypted tokens, created in
organizations of their own (`bench-sync-*`, removed afterwards) and last synced a day ago (a daily pass, not a
backfill). Every other account of the database is paused for the run (next_sync_at) and restored.

The providers: bench.fake_providers on loopback, answering after 100-300 ms, shaped as documented and enforcing
the documented quotas: YouTube's 10,000 Data API units per Pacific day, Spotify's rolling 30-second window,
TikTok's 600 calls per endpoint in any minute, Meta's usage headers. Spotify publishes no number for its window;
the run gives the app SPOTIFY_FLOOR_SECONDS' worth of calls: `quota_limit` = calls needed x 30 / floor (what an
operator sets for their app), the same in the fake.

The pass: real `arti worker --queue sync` processes (3 x 22 slots full size, 2 x 8 small) and pg_cron's own
`private.enqueue_due_syncs()`, which plans the pass against the quotas (batches of 50 for YouTube and Spotify,
every provider spread over the time the binding window needs). Measured, one pass (`--reps` does not repeat it):

* wall time from the planner's call to the last run finished, against the quota floor: the calls the day needs
  divided by the allowed rate, per provider with an app-wide limit, the largest (target <= 1.2x; at full size
  TikTok's video.list window binds: 4,545 calls at 600 a minute);
* provider calls per account (counted by the fake) against the documented minimum (arti.quotas specs: reports
  and albums per account, 1 batched call per 50; Instagram 5; SoundCloud 2; TikTok 4) (target <= 1.0);
* calls within the quotas / calls made (target >= 1.000: no 429, no quotaExceeded);
* the workers' resident memory when they are up and when the pass is over (information).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from arti.crypto import TokenCipher, generate_key_setting
from arti.providers.base import TokenSet
from arti.quotas import all_specs, ensure_specs
from arti.settings import PROJECT_ROOT
from arti.tokens import token_params
from bench.fair_queues import _wait
from bench.fake_providers import QuotaFakeProviders, external_id, token_for
from bench.generate import PROVIDERS, zipf_sizes
from bench.report import Measurement, Result
from bench.soak import rss_kib

NAME = "sync_at_scale"
TARGET_FLOOR = 1.2
TARGET_CALLS = 1.0
TARGET_WITHIN_QUOTA = 1.0
LATENCY = (0.1, 0.3)
WORKERS = {"full": 3, "small": 2}
WORKER_CONCURRENCY = {"full": 22, "small": 8}
SPOTIFY_FLOOR_SECONDS = {"full": 150.0, "small": 12.0}
SPOTIFY_WINDOW = 30
ORG_PREFIX = "bench-sync-"
PROVIDER_ENV = {f"{p.upper()}_{part}": f"bench-{p}-{part.lower()}" for p in PROVIDERS
                for part in ("CLIENT_ID", "CLIENT_SECRET")}


@contextmanager
def _workers(url: str, gateway: str, keys: str, count: int, concurrency: int, folder: Path
             ) -> Iterator[list[subprocess.Popen]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "ARTI_"))}
    env.update(SUPABASE_DB_URL=url, ARTI_ENCRYPTION_KEYS=keys, ARTI_PROVIDER_GATEWAY=gateway, **PROVIDER_ENV,
               PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])))
    procs: list[subprocess.Popen] = []
    try:
        for i in range(count):
            with (folder / f"worker-{i}.log").open("wb") as out:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "arti.cli", "worker", "--queue", "sync", "--concurrency", str(concurrency)],
                    cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT))
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _setup(conn: psycopg.Connection[Any], spec: dict[str, Any], keys: str) -> dict[str, Any]:
    """Organizations, artists and accounts in the generator's mix, with tokens; other accounts paused."""
    sizes = zipf_sizes(spec["orgs"], spec["accounts"], spec["zipf_s"])
    tag = uuid.uuid4().hex[:6]
    cipher = TokenCipher.from_setting(keys)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    synced = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    orgs, artists, accounts, tokens = [], [], [], []
    number = 0
    for index, size in enumerate(sizes, start=1):
        org = uuid.uuid4()
        orgs.append((org, f"Bench sync {index}", f"{ORG_PREFIX}{tag}-{index:04d}"))
        artist = None
        for k in range(size):
            if k % len(PROVIDERS) == 0:
                artist = uuid.uuid4()
                artists.append((artist, org, f"Sync artist {index}-{k // len(PROVIDERS) + 1}"))
            number += 1
            provider = PROVIDERS[k % len(PROVIDERS)]
            account, ext = uuid.uuid4(), external_id(provider, number)
            accounts.append((account, org, artist, provider, ext, synced))
            tokens.append(token_params(cipher, account, TokenSet(access_token=token_for(ext), refresh_token="r",
                                                                 expires_at=expires)))
    conn.execute("create schema if not exists bench")
    conn.execute("create table if not exists bench.sync_scale_paused (id uuid primary key, next_sync_at timestamptz)")
    with conn.transaction():
        conn.execute("insert into bench.sync_scale_paused (id, next_sync_at) select a.id, a.next_sync_at "
                     "from public.connected_accounts as a where a.status = 'active' on conflict do nothing")
        conn.execute("update public.connected_accounts set next_sync_at = 'infinity' where status = 'active'")
        with conn.cursor() as cur:
            with cur.copy("copy public.organizations (id, name, slug) from stdin") as copy:
                for row in orgs:
                    copy.write_row(row)
            with cur.copy("copy public.artists (id, org_id, name) from stdin") as copy:
                for row in artists:
                    copy.write_row(row)
            with cur.copy("copy public.connected_accounts (id, org_id, artist_id, provider, external_id, "
                          "last_synced_at) from stdin") as copy:
                for row in accounts:
                    copy.write_row(row)
            with cur.copy("copy private.provider_tokens (account_id, access_token_encrypted, refresh_token_encrypted, "
                          "expires_at, scope) from stdin") as copy:
                for row in tokens:
                    copy.write_row(row)
    mix = {p: sum(1 for a in accounts if a[3] == p) for p in PROVIDERS}
    return {"orgs": [o[0] for o in orgs], "tag": tag, "accounts": len(accounts), "mix": mix}


def _teardown(conn: psycopg.Connection[Any], world: dict[str, Any], saved: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    orgs = world["orgs"]
    conn.execute("delete from procrastinate.procrastinate_jobs where (args ->> 'sync_run_id')::uuid in "
                 "(select r.id from public.sync_runs as r where r.org_id = any(%s)) or args ->> 'account_id' in "
                 "(select a.id::text from public.connected_accounts as a where a.org_id = any(%s))", (orgs, orgs))
    conn.execute("delete from private.sync_batches as b where exists (select 1 from private.sync_batch_items as i "
                 "join public.connected_accounts as a on a.id = i.account_id where i.batch_id = b.id "
                 "and a.org_id = any(%s))", (orgs,))
    conn.execute("delete from public.organizations where id = any(%s)", (orgs,))
    with conn.transaction():
        conn.execute("update public.connected_accounts as a set next_sync_at = p.next_sync_at "
                     "from bench.sync_scale_paused as p where p.id = a.id")
        conn.execute("drop table bench.sync_scale_paused")
    for row in saved["quotas"]:
        conn.execute("update private.provider_quotas set quota_limit = %(quota_limit)s, lateness_seconds = "
                     "%(lateness_seconds)s, next_call_at = %(next_call_at)s::timestamptz "
                     "where provider = %(provider)s and scope = %(scope)s", row)
    conn.execute("delete from private.provider_quota_usage")
    for row in saved["usage"]:
        conn.execute("insert into private.provider_quota_usage (provider, scope, period_start, used, calls) "
                     "values (%(provider)s, %(scope)s, %(period_start)s, %(used)s, %(calls)s)", row)
    for row in saved["state"]:
        row = {**row, "reported": Jsonb(row["reported"]) if row["reported"] is not None else None}
        conn.execute("update private.provider_quota_state set blocked_until = %(blocked_until)s, blocked_reason = "
                     "%(blocked_reason)s, reported = %(reported)s, reported_at = %(reported_at)s "
                     "where provider = %(provider)s", row)
    return time.perf_counter() - t0


def _save_quotas(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    return {
        "quotas": conn.execute("select provider, scope, quota_limit, lateness_seconds, next_call_at::text "
                               "from private.provider_quotas").fetchall(),
        "usage": conn.execute("select * from private.provider_quota_usage").fetchall(),
        "state": conn.execute("select * from private.provider_quota_state").fetchall(),
    }


def _progress(conn: psycopg.Connection[Any], orgs: list[Any]) -> dict[str, int]:
    rows = conn.execute(
        "select count(*) filter (where status = 'succeeded') as succeeded, count(*) filter (where status = 'failed') "
        "as failed, count(*) filter (where status in ('queued', 'running') and deferred_reason is not null) "
        "as deferred, count(*) as runs from public.sync_runs where org_id = any(%s)", (orgs,)).fetchone()
    return {k: int(v) for k, v in rows.items()}


TIMELINE_SQL = """
with jobs as (
    select a.provider::text as provider, r.started_at, r.finished_at, r.queued_at,
           min(e.at) filter (where e.type = 'started') as job_started,
           coalesce(j.scheduled_at, r.queued_at) as scheduled_at
    from public.sync_runs as r
    join public.connected_accounts as a on a.id = r.account_id
    join procrastinate.procrastinate_jobs as j on (j.args ->> 'sync_run_id')::uuid = r.id
    left join procrastinate.procrastinate_events as e on e.job_id = j.id
    where r.org_id = any(%s)
    group by a.provider, r.id, j.id
)
select provider, count(*) as runs,
       round(extract(epoch from max(finished_at) - min(queued_at))::numeric, 2) as last_finished_s,
       round(extract(epoch from max(scheduled_at) - min(queued_at))::numeric, 2) as last_scheduled_s,
       round(percentile_cont(0.5) within group (order by extract(epoch from job_started - scheduled_at))::numeric, 3)
           as start_late_p50_s,
       round(percentile_cont(0.95) within group (order by extract(epoch from job_started - scheduled_at))::numeric, 3)
           as start_late_p95_s,
       round(percentile_cont(0.5) within group (order by extract(epoch from finished_at - started_at))::numeric, 3)
           as run_p50_s,
       round(percentile_cont(0.95) within group (order by extract(epoch from finished_at - started_at))::numeric, 3)
           as run_p95_s
from jobs group by provider order by provider
"""


def _timeline(conn: psycopg.Connection[Any], orgs: list[Any]) -> list[dict[str, Any]]:
    """Per provider: when runs were due and started (lateness behind the plan), how long they ran, the last end."""
    return [{k: (float(v) if k != "provider" and v is not None else v) for k, v in row.items()}
            for row in conn.execute(TIMELINE_SQL, (orgs,)).fetchall()]


def run(url: str, dataset: dict[str, Any], *, warmup: int, reps: int, log: Callable[[str], None] = print
        ) -> tuple[list[Result], dict[str, Any]]:
    spec = dataset["spec"]
    size = "small" if spec["name"] == "small" else "full"
    specs = all_specs()
    keys = generate_key_setting("bench")
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        ensure_specs(conn)
        saved = _save_quotas(conn)
        conn.execute("delete from private.provider_quota_usage")
        conn.execute("update private.provider_quota_state set blocked_until = null, blocked_reason = null")
        t0 = time.perf_counter()
        world = _setup(conn, spec, keys)
        setup_s = time.perf_counter() - t0
        mix = world["mix"]
        spotify_calls = mix["spotify"] + math.ceil(mix["spotify"] / specs["spotify"].batch_size)
        limit = max(2, math.ceil(spotify_calls * SPOTIFY_WINDOW / SPOTIFY_FLOOR_SECONDS[size]))
        conn.execute("update private.provider_quotas set quota_limit = %s, window_seconds = %s, next_call_at = "
                     "'-infinity' where provider = 'spotify' and scope = 'rolling_30s'", (limit, SPOTIFY_WINDOW))
        settings = {r["name"]: r["setting"] for r in conn.execute(
            "select name, setting from pg_settings where name in ('synchronous_commit', 'fsync', 'wal_level', "
            "'shared_buffers', 'max_connections')").fetchall()}
        report = conn.execute("select provider, scope, quota_limit, window_seconds, calls_needed, units_needed, "
                              "pass_seconds from private.quota_report(now()) where accounts > 0").fetchall()
        floors = {f"{r['provider']}.{r['scope']}": float(r["pass_seconds"]) for r in report
                  if r["pass_seconds"] is not None and float(r["units_needed"]) > 0}
        floor = max(floors.values(), default=0.0)
        concurrency, workers = WORKER_CONCURRENCY[size], WORKERS[size]
        log(f"  {NAME}: {world['accounts']:,} accounts ({', '.join(f'{p} {n:,}' for p, n in mix.items())}) in "
            f"{setup_s:.1f} s; Spotify {limit} calls / {SPOTIFY_WINDOW} s -> quota floor {floor:.1f} s; "
            f"{workers} workers x {concurrency} slots; server synchronous_commit={settings.get('synchronous_commit')}")
        details: dict[str, Any] = {"setup_s": round(setup_s, 1), "mix": mix, "floors_s": floors,
                                   "postgres_settings": settings, "spotify_limit_per_30s": limit}
        try:
            with QuotaFakeProviders(latency=LATENCY, spotify_limit=limit, spotify_window=SPOTIFY_WINDOW) as fake, \
                    tempfile.TemporaryDirectory(prefix="arti-bench-sync-") as tmp, \
                    _workers(url, fake.url, keys, workers, concurrency, Path(tmp)) as procs:
                _wait(lambda: conn.execute("select count(*) >= %s as up from procrastinate.procrastinate_workers "
                                           "where last_heartbeat > now() - interval '10 seconds'",
                                           (workers,)).fetchone()["up"], timeout=60, what="the workers to start",
                      every=0.2)
                rss_start = [rss_kib(p.pid) for p in procs]
                started = time.perf_counter()
                due = conn.execute("select private.enqueue_due_syncs() as n").fetchone()["n"]
                plan_s = time.perf_counter() - started
                if due != world["accounts"]:
                    raise RuntimeError(f"the planner queued {due} accounts, not the world's {world['accounts']}")
                timeout = max(120.0, floor * 4 + 60)

                def done() -> dict[str, int] | None:
                    progress = _progress(conn, world["orgs"])
                    for proc in procs:
                        if proc.poll() is not None:
                            raise RuntimeError(f"a worker exited with {proc.returncode} (see its log)")
                    finished = progress["succeeded"] + progress["failed"] + progress["deferred"]
                    return progress if finished >= world["accounts"] else None

                progress = _wait(done, timeout=timeout, what="the daily pass to finish", every=0.25)
                wall = time.perf_counter() - started
                details["timeline"] = _timeline(conn, world["orgs"])
                rss_end = [rss_kib(p.pid) for p in procs]
                calls = {p: fake.provider_calls(p) for p in PROVIDERS}
                violations = list(fake.violations)
                details.update(endpoint_calls={f"{p}.{e}": n for (p, e), n in sorted(fake.calls.items())},
                               spotify_peak_calls_in_30s=fake.spotify_peak_window)
        finally:
            details["teardown_s"] = round(_teardown(conn, world, saved), 1)
    minimum = {p: specs[p].minimum_calls_per_account(n) * n for p, n in mix.items()}
    per_account = {p: round(calls[p] / n, 4) for p, n in mix.items() if n}
    minimum_per_account = {p: round(minimum[p] / n, 4) for p, n in mix.items() if n}
    total_calls = sum(calls.values())
    rss = {"start_mib": [round(k / 2**10, 1) if k else None for k in rss_start],
           "end_mib": [round(k / 2**10, 1) if k else None for k in rss_end]}
    details.update(wall_s=round(wall, 1), plan_s=round(plan_s, 2), floor_s=round(floor, 1), progress=progress,
                   calls=calls, calls_per_account=per_account, minimum_calls_per_account=minimum_per_account,
                   violations=len(violations), violation_examples=violations[:5], worker_rss=rss,
                   workers=f"{workers} x arti worker --queue sync --concurrency {concurrency}")
    params = {"accounts": world["accounts"], "mix": mix, "latency_s": list(LATENCY), "spotify_limit_per_30s": limit,
              "floors_s": floors, "plan_s": round(plan_s, 2), "succeeded": progress["succeeded"],
              "failed": progress["failed"], "deferred": progress["deferred"], "worker_rss_mib": rss,
              "postgres_settings": settings}
    wall_m, floor_m = Measurement([wall]), Measurement([floor or wall])
    results = [
        Result(benchmark=NAME, name=f"{NAME}.wall_vs_quota_floor", kind="time", measured=wall_m,
               baseline_name="quota floor (calls / allowed rate)", baseline=floor_m, target_op="<=",
               target=TARGET_FLOOR, params=params,
               note="a daily pass: planner call to the last run finished, against the calls the day needs divided "
                    "by the binding provider's allowed rate"),
        Result(benchmark=NAME, name=f"{NAME}.calls_per_account_vs_minimum", kind="score", measured=wall_m,
               baseline_name="documented minimum", baseline=floor_m, target_op="<=", target=TARGET_CALLS,
               value=round(total_calls / sum(minimum.values()), 4),
               params={"calls_per_account": per_account, "minimum_calls_per_account": minimum_per_account,
                       "calls": calls},
               note="provider calls counted by the fake / the documented minimum (batched public data, owner-only "
                    "calls per account)"),
        Result(benchmark=NAME, name=f"{NAME}.calls_within_quota", kind="score", measured=wall_m,
               baseline_name="calls made", baseline=floor_m, target_op=">=", target=TARGET_WITHIN_QUOTA,
               value=round((total_calls - len(violations)) / max(total_calls, 1), 4),
               params={"violations": len(violations), "calls": total_calls,
                       "spotify_peak_calls_in_30s": details["spotify_peak_calls_in_30s"], "spotify_limit": limit},
               note="calls the fakes answered within the documented quotas (no 429, no quotaExceeded)"),
    ]
    log(f"  {NAME}: wall {wall:.1f} s vs floor {floor:.1f} s ({wall / max(floor, 1e-9):.2f}x), planned in "
        f"{plan_s:.1f} s; {progress['succeeded']:,} succeeded, {progress['failed']:,} failed, "
        f"{progress['deferred']:,} deferred; calls/account "
        + ", ".join(f"{p} {per_account[p]:.3f} (min {minimum_per_account[p]:.3f})" for p in per_account)
        + f"; {len(violations)} quota violations; worker RSS {rss['start_mib']} -> {rss['end_mib']} MiB")
    for row in details.get("timeline", []):
        log(f"    {row['provider']:<11} {row['runs']:>6.0f} runs, last due {row['last_scheduled_s']:.1f} s, last done "
            f"{row['last_finished_s']:.1f} s; started behind plan p50/p95 {row['start_late_p50_s']:.2f}/"
            f"{row['start_late_p95_s']:.2f} s; ran p50/p95 {row['run_p50_s']:.2f}/{row['run_p95_s']:.2f} s")
    return results, details
