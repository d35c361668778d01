"""A small world of two organizations with a user in every role, for RLS and RPC tests."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.harness import TestDB

ROLES = ("viewer", "analyst", "manager", "admin", "owner")
PERSONAS = ("anon", "outsider", *ROLES, "platform_admin")


@dataclass
class World:
    """Ids of everything created; `users[persona]` for the personas of org A."""

    users: dict[str, uuid.UUID] = field(default_factory=dict)
    ids: dict[str, Any] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        return {**self.ids, **{f"user_{k}": v for k, v in self.users.items()}}


def create_org(db: TestDB, owner: uuid.UUID, name: str) -> uuid.UUID:
    """An organization created through the RPC, as its owner would."""
    with db.as_user(owner):
        return db.value("select id from public.create_organization(%s)", (name,))


def add_member(db: TestDB, org_id: uuid.UUID, user_id: uuid.UUID, role: str) -> None:
    db.execute("insert into public.memberships (org_id, user_id, role) values (%s, %s, %s)", (org_id, user_id, role))


def create_artist(db: TestDB, org_id: uuid.UUID, name: str) -> uuid.UUID:
    return db.value("insert into public.artists (org_id, name) values (%s, %s) returning id", (org_id, name))


def create_account(db: TestDB, org_id: uuid.UUID, artist_id: uuid.UUID, provider: str,
                   external_id: str | None = None) -> uuid.UUID:
    return db.value(
        "insert into public.connected_accounts (org_id, artist_id, provider, external_id, display_name) "
        "values (%s, %s, %s, %s, %s) returning id",
        (org_id, artist_id, provider, external_id or uuid.uuid4().hex[:12], f"{provider} account"),
    )


def add_metric_series(db: TestDB, org_id: uuid.UUID, account_id: uuid.UUID, metric: str,
                      values: list[float | None], end_day: dt.date) -> None:
    """Daily values ending on end_day (the last element is end_day's value)."""
    start = end_day - dt.timedelta(days=len(values) - 1)
    rows = [(account_id, metric, start + dt.timedelta(days=i), org_id, v, None if v is not None else "not provided")
            for i, v in enumerate(values)]
    with db.conn.cursor() as cur:
        cur.executemany(
            "insert into public.metrics (account_id, metric, day, org_id, value, note) values (%s, %s, %s, %s, %s, %s)",
            rows,
        )


def build_world(db: TestDB) -> World:
    """Org A with one user per role, org B with its own owner, an outsider and a platform admin."""
    world = World()
    for role in ROLES:
        world.users[role] = db.create_user(f"{role}-a-{uuid.uuid4().hex[:6]}@example.test")
    world.users["outsider"] = db.create_user()
    world.users["platform_admin"] = db.create_user(app_metadata={"platform_admin": True})
    owner_b = db.create_user()
    world.users["owner_b"] = owner_b
    world.users["extra"] = db.create_user()  # a second viewer of org A, target of membership RPCs

    org_a = create_org(db, world.users["owner"], "Org A")
    org_b = create_org(db, owner_b, "Org B")
    for role in ("viewer", "analyst", "manager", "admin"):
        add_member(db, org_a, world.users[role], role)
    add_member(db, org_a, world.users["extra"], "viewer")
    artist_a, artist_b = create_artist(db, org_a, "Artist A"), create_artist(db, org_b, "Artist B")
    account_a = create_account(db, org_a, artist_a, "spotify")
    account_b = create_account(db, org_b, artist_b, "youtube")
    campaign_a = db.value(
        "insert into public.campaigns (org_id, artist_id, name, starts_on) values (%s, %s, 'Launch', '2026-11-01') "
        "returning id", (org_a, artist_a))
    sync_a = db.value("insert into public.sync_runs (org_id, account_id, trigger) values (%s, %s, 'schedule') "
                      "returning id", (org_a, account_a))
    today = dt.date(2026, 11, 24)
    add_metric_series(db, org_a, account_a, "followers", [100, 110, 121], today)
    add_metric_series(db, org_b, account_b, "followers", [5, 6, 7], today)
    snapshot_a = db.value("insert into public.metric_snapshots (org_id, account_id, endpoint, payload) "
                          "values (%s, %s, '/v1/artists/x', '{}') returning id", (org_a, account_a))
    notification = db.value("insert into public.notifications (user_id, org_id, kind, title) "
                            "values (%s, %s, 'sync.failed', 'Sync failed') returning id",
                            (world.users["viewer"], org_a))
    with db.as_user(world.users["admin"]):
        invitation = db.value("select public.invite_member(%s, 'new@example.test', 'viewer') ->> 'invitation_id'",
                              (org_a,))
    insight_a = db.value("insert into public.insights (org_id, artist_id, account_id, kind, metric, day, title, body, "
                         "dedupe_key) values (%s, %s, %s, 'anomaly', 'followers', %s, 'Spike', 'Followers spiked.', "
                         "'k1') returning id", (org_a, artist_a, account_a, today))
    document_a = db.value("insert into public.documents (org_id, artist_id, source, source_key, content) "
                          "values (%s, %s, 'metrics', 'k1', 'Spotify followers rose.') returning id", (org_a, artist_a))
    audit_a = db.value("select max(id) from public.audit_log where org_id = %s", (org_a,))
    world.ids.update(org_a=org_a, org_b=org_b, artist_a=artist_a, artist_b=artist_b, account_a=account_a,
                     account_b=account_b, campaign_a=campaign_a, sync_a=sync_a, snapshot_a=snapshot_a,
                     notification=notification, invitation=uuid.UUID(invitation), audit_a=audit_a,
                     insight_a=insight_a, document_a=document_a, user_self=world.users["analyst"],
                     profile_viewer=world.users["viewer"], today=today)
    return world
