"""TikTok end to end (issue 19): connect through the real edge, sync in a real worker, a video that took off becomes
an insight.

The handlers run as uvicorn behind Caddy (`edge_factory`), the worker is `arti worker` in its own process, and TikTok
is faked at its HTTP boundary for both through ARTI_PROVIDER_GATEWAY (tests/fake_oauth_providers.py), answering as
TikTok documents it. The connect flow is start → callback (parks) → complete; before the worker runs the backfill the
connection queued, the account gets a month of history (the daily views of its recent videos) and the previous day's
snapshot of each video's counts, and the stored access token is made to expire, so the worker refreshes it (TikTok
rotates refresh tokens) before syncing. One video jumped from 60,000 to 260,000 views since that snapshot: the day's
views are a spike, which private.detect_anomalies turns into an insight and private.refresh_documents into a chunk.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from arti.settings import PROJECT_ROOT
from tests.edge_stack import EdgeStack
from tests.factories import World
from tests.fake_oauth_providers import FakeOAuthProviders
from tests.handlers.conftest import KEY_SETTING, RETURN_TO, bearer, cipher, query_of
from tests.harness import child_env, wait_until
from tests.unit.providers import payloads as p

TOKEN_URL = "https://open.tiktokapis.com/v2/oauth/token/"
VIDEO_LIST_URL = "https://open.tiktokapis.com/v2/video/list/"
TOOK_OFF = "7400000000000000002"
STEADY = "7400000000000000001"
POSTED_TODAY = "7400000000000000003"


@pytest.fixture
def gateway() -> Iterator[FakeOAuthProviders]:
    with FakeOAuthProviders() as fake:
        yield fake


@pytest.fixture
def start_worker(database_url: str, gateway: FakeOAuthProviders) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        env = child_env(SUPABASE_DB_URL=database_url, ARTI_ENCRYPTION_KEYS=KEY_SETTING,
                        ARTI_PROVIDER_GATEWAY=gateway.url, ARTI_EMBEDDING_PROVIDER="none",
                        TIKTOK_CLIENT_ID="tiktok-client_id-value", TIKTOK_CLIENT_SECRET="tiktok-client_secret-value",
                        ARTI_STALLED_WORKER_SECONDS="3")
        proc = subprocess.Popen([sys.executable, "-m", "arti.cli", "worker", "--concurrency", "2"], cwd=PROJECT_ROOT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def seed_history(conn: psycopg.Connection[Any], account_id: str, org_id: uuid.UUID, end: dt.date) -> None:
    """30 days of daily views (about 1,000 a day) and followers before `end`, and the snapshot of the day before."""
    conn.execute(
        "insert into public.metrics (account_id, metric, day, org_id, value) "
        "select %(account)s::uuid, m.metric, %(end)s::date - d, %(org)s::uuid, "
        "case m.metric when 'views' then 1000 + (d * 37) %% 90 else 48000 + 7 * (30 - d) end "
        "from generate_series(1, 30) as d cross join (values ('views'), ('followers')) as m (metric)",
        {"account": account_id, "org": org_id, "end": end})
    videos = [{"id": TOOK_OFF, "view_count": 60_000}, {"id": STEADY, "view_count": 10_000}]
    payload = {"points": [{"metric": "views", "day": (end - dt.timedelta(days=1)).isoformat(),
                           "raw": {"videos": videos, "video_count": 2, "pages": 1}}]}
    conn.execute("insert into public.metric_snapshots (org_id, account_id, endpoint, payload, fetched_at) "
                 "values (%s, %s, 'fetch_metrics', %s, now() - interval '1 day')",
                 (org_id, account_id, json.dumps(payload)))


def test_connect_sync_and_a_video_that_took_off_becomes_an_insight(
        world: World, conn: psycopg.Connection[Any], edge_factory: Callable[..., EdgeStack],
        gateway: FakeOAuthProviders, start_worker: Any) -> None:
    # `world` first: torn down last, once the worker has stopped.
    gateway.connect("tiktok")
    edge = edge_factory(ARTI_PROVIDER_GATEWAY=gateway.url)
    manager, org = world.users["manager"], world.ids["org_a"]

    # ---- connect: start -> TikTok's consent (faked) -> callback parks -> the starter completes
    with edge.client() as http:
        start = http.get("/functions/v1/oauth/tiktok/start", headers=bearer(manager), params={
            "org_id": str(org), "artist_id": str(world.ids["artist_a"]), "redirect_to": RETURN_TO})
        assert start.status_code == 200, start.text
        authorize = query_of(start.json()["authorize_url"])
        assert start.json()["authorize_url"].startswith("https://www.tiktok.com/v2/auth/authorize/?")
        assert authorize["scope"] == "user.info.basic,user.info.stats,video.list" and "code_challenge" not in authorize
        back = http.get("/functions/v1/oauth/tiktok/callback", params={"code": "tt-code", "state": authorize["state"]})
        assert back.status_code == 302, back.text
        landing = query_of(back.headers["location"])
        assert landing["status"] == "pending", landing
        done = http.post("/functions/v1/oauth/tiktok/complete", json={"completion": landing["completion"]},
                         headers=bearer(manager))
        assert done.status_code == 200, done.text
        account_id = done.json()["account_id"]
    exchange = gateway.calls("POST", TOKEN_URL)[-1].form
    assert (exchange["client_key"], exchange["grant_type"], exchange["code"]) == (
        "tiktok-client_id-value", "authorization_code", "tt-code")
    account = conn.execute("select external_id, display_name, status::text from public.connected_accounts "
                           "where id = %s", (account_id,)).fetchone()
    assert account == {"external_id": p.TT_OPEN_ID, "display_name": "lunavale", "status": "active"}
    run = conn.execute("select id, status::text from public.sync_runs where account_id = %s", (account_id,)).fetchone()
    assert run is not None and run["status"] == "queued", "the backfill waits for a worker"

    # ---- before the worker: history, yesterday's per-video snapshot, an expired token, today's videos
    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    seed_history(conn, account_id, org, end)
    conn.execute("update private.provider_tokens set expires_at = now() - interval '1 minute' where account_id = %s",
                 (account_id,))
    gateway.answer("POST", TOKEN_URL, p.tt_token("act.tiktok-access-2", "rft.tiktok-refresh-2"))
    posted = int((dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).timestamp())
    gateway.answer("POST", VIDEO_LIST_URL, p.tt_videos([
        p.tt_video(POSTED_TODAY, 900, create_time=posted),
        p.tt_video(TOOK_OFF, 260_000),
        p.tt_video(STEADY, 10_400),
    ]))

    # ---- a real worker syncs, then finds the anomaly
    start_worker()
    wait_until(lambda: conn.execute("select status::text from public.sync_runs where id = %s",
                                    (run["id"],)).fetchone()["status"] in ("succeeded", "failed"),
               timeout=90, what="the TikTok sync to finish")
    finished = conn.execute("select status::text, error, metrics_written from public.sync_runs where id = %s",
                            (run["id"],)).fetchone()
    assert finished["status"] == "succeeded", finished

    metrics = {r["metric"]: r for r in conn.execute(
        "select metric, value, note from public.metrics where account_id = %s and day = %s", (account_id, end))}
    assert {m: int(metrics[m]["value"]) for m in ("followers", "following", "likes_total", "videos", "views")} == {
        "followers": 48210, "following": 312, "likes_total": 1204533, "videos": 87,
        "views": 900 + 200_000 + 400}
    snapshot = conn.execute("select payload from public.metric_snapshots where sync_run_id = %s",
                            (run["id"],)).fetchone()["payload"]
    views_raw = next(pt["raw"] for pt in snapshot["points"] if pt["metric"] == "views")
    assert {v["id"]: v["view_count"] for v in views_raw["videos"]} == {POSTED_TODAY: 900, TOOK_OFF: 260_000,
                                                                        STEADY: 10_400}, "per-video snapshot kept"
    assert views_raw["top_video"]["id"] == TOOK_OFF

    # The refresh was sent with the first refresh token, and TikTok's rotated one replaced it.
    refresh = gateway.calls("POST", TOKEN_URL)[-1].form
    assert (refresh["grant_type"], refresh["refresh_token"]) == ("refresh_token", "rft.tiktok-refresh-1")
    tokens = conn.execute("select refresh_token_encrypted from private.provider_tokens where account_id = %s",
                          (account_id,)).fetchone()
    assert cipher().decrypt(tokens["refresh_token_encrypted"], f"{account_id}:refresh") == "rft.tiktok-refresh-2"

    insight = wait_until(lambda: conn.execute(
        "select title, body, evidence, metric, day from public.insights where account_id = %s and kind = 'anomaly' "
        "and metric = 'views'", (account_id,)).fetchone(), timeout=60, what="the anomaly insight")
    assert insight["day"] == end
    assert insight["title"].startswith("TikTok views: 201,300 on ")
    assert float(insight["evidence"]["value"]) == 201_300 and insight["evidence"]["cumulative"] is False
    chunk = wait_until(lambda: conn.execute(
        "select content from public.documents where org_id = %s and source = 'anomaly' and content like %s",
        (org, "TikTok views%")).fetchone(), timeout=30, what="the anomaly's chunk")
    assert "201,300" in chunk["content"]
