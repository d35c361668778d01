"""supabase/seed.sql loads into a migrated database and gives the dashboards a year of data."""

from __future__ import annotations

import uuid

from arti.settings import PROJECT_ROOT
from tests.harness import TestDB

ORG = "00000000-0000-4000-b000-000000000001"
VIEWER = "00000000-0000-4000-a000-000000000005"
MANAGER = "00000000-0000-4000-a000-000000000003"


def test_seed_loads_demo_org_with_every_role_provider_and_a_year(db: TestDB) -> None:
    db.execute((PROJECT_ROOT / "supabase" / "seed.sql").read_text().encode())
    roles = [r["role"] for r in db.execute("select role::text as role from public.memberships where org_id = %s "
                                           "order by memberships.role", (ORG,))]
    assert roles == ["viewer", "analyst", "manager", "admin", "owner"]
    providers = [r["provider"] for r in db.execute(
        "select provider::text from public.connected_accounts where org_id = %s order by 1", (ORG,))]
    assert providers == ["instagram", "soundcloud", "spotify", "tiktok", "youtube"]
    days = db.value("select min(n) from (select count(*) as n from public.metrics group by account_id, metric) c")
    assert days == 365
    with db.as_user(VIEWER, email="viewer@northstar.test"):
        summary = db.execute("select * from public.metrics_summary(%s, current_date - 30, current_date)", (ORG,))
        assert len(summary) == 12 and all(r["latest_value"] is not None for r in summary)
    with db.as_user(MANAGER, email="manager@northstar.test"):
        members = db.execute("select email from public.org_members(%s)", (ORG,))
        assert len(members) == 5
    assert db.value("select full_name from public.profiles where id = %s", (VIEWER,)) == "Victor Viewer"


ANALYST = "00000000-0000-4000-a000-000000000004"
ARTISTS = {"00000000-0000-4000-c000-000000000001": "Luna Vale", "00000000-0000-4000-c000-000000000002":
           "The Quiet Engines", "00000000-0000-4000-c000-000000000003": "DJ Koa"}
SEED = PROJECT_ROOT / "supabase" / "seed.sql"


def test_seed_has_anomalies_and_documents_at_once_and_loads_twice(db: TestDB) -> None:
    """Issue 17: `--demo` answered "No facts match" (metrics, but no anomalies and no documents). The seed now ends by
    detecting anomalies for its accounts and writing its artists' documents, as a sync's insights job would."""
    db.execute(SEED.read_text().encode())
    anomalies = db.execute("select account_id::text, metric, day from public.insights "
                           "where org_id = %s and kind = 'anomaly'", (ORG,))
    # Every seeded account has the jump (running totals) or spike (daily flows) three days ago in its data.
    assert {r["account_id"] for r in anomalies} == {f"00000000-0000-4000-d000-00000000000{i}" for i in range(1, 6)}
    documents = db.execute("select artist_id::text, source, count(*) as n from public.documents where org_id = %s "
                           "group by 1, 2", (ORG,))
    by_artist = {(r["artist_id"], r["source"]): r["n"] for r in documents}
    for artist in ARTISTS:
        assert by_artist.get((artist, "metrics"), 0) > 0 and by_artist.get((artist, "anomaly"), 0) > 0, artist
    assert by_artist[("00000000-0000-4000-c000-000000000001", "campaign")] == 1
    # The members hear about the anomalies (the outbox's notifications), as after a real sync.
    assert db.value("select count(*) from public.notifications where org_id = %s", (ORG,)) > 0

    counts = "select (select count(*) from public.insights) as i, (select count(*) from public.documents) as d, " \
             "(select count(*) from public.notifications) as n, (select count(*) from public.metrics) as m"
    before = db.execute(counts)
    db.execute(SEED.read_text().encode())  # loadable twice (supabase db push --include-seed, arti db reset)
    assert db.execute(counts) == before


async def test_the_demo_analyst_gets_an_extractive_answer_with_citations(database_url: str) -> None:
    """What POST /functions/v1/insights/ask does for the demo analyst (embedding provider none: full text only)."""
    import json

    import psycopg
    from psycopg.rows import dict_row

    from arti.insights import answer_question

    conn = await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row)
    try:
        await conn.execute(SEED.read_text().encode())
        await conn.execute("set local role authenticated")
        await conn.execute("select set_config('request.jwt.claims', %s, true)",
                           (json.dumps({"sub": ANALYST, "role": "authenticated"}),))
        answer = await answer_question(conn, uuid.UUID(ORG), "How did Luna Vale's followers change?")
    finally:
        await conn.rollback()
        await conn.close()
    assert answer.mode == "extractive" and answer.insight_id is not None
    assert len(answer.citations) >= 3, answer.text
    assert "No facts" not in answer.text
    for citation in answer.citations:
        assert "Luna Vale" in citation["content"] and "ollowers" in citation["content"], citation
        assert f"[{citation['id']}]" in answer.text
