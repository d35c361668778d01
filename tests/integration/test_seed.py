"""supabase/seed.sql loads into a migrated database and gives the dashboards a year of data."""

from __future__ import annotations

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
