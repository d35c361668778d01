"""Endpoint RPCs: permissions, isolation between organizations, the SSRF guard and secrets shown once."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from tests.factories import World, build_world
from tests.harness import TestDB

URL = "https://hooks.example.com/arti"


def loopback(db: TestDB, allowed: bool) -> None:
    db.execute("update private.settings set value = %s where key = 'webhooks.allow_loopback_http'",
               ("true" if allowed else "false",))


def create(db: TestDB, world: World, persona: str = "admin", url: str = URL, events: Any = ("sync.failed",),
           org: str = "org_a") -> dict[str, Any]:
    with db.as_user(world.users[persona]):
        return db.value("select public.create_webhook_endpoint(%s, %s, %s, %s)",
                        (world.ids[org], url, list(events), "to n8n"))


def refused(db: TestDB, world: World, sql: str, params: Any, persona: str = "admin") -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught, db.as_user(world.users[persona]):
        db.execute(sql, params)
    return caught.value


def with_delivery(db: TestDB, world: World) -> tuple[dict[str, Any], Any]:
    endpoint = create(db, world)
    db.execute("update public.sync_runs set status = 'failed' where id = %(sync_a)s", world.params())
    delivery = db.value("select id from public.webhook_deliveries where endpoint_id = %s", (endpoint["id"],))
    db.execute("insert into public.webhook_delivery_attempts (delivery_id, org_id, attempt, outcome) "
               "values (%s, %s, 1, 'retry')", (delivery, world.ids["org_a"]))
    return endpoint, delivery


def test_admin_creates_an_endpoint_and_sees_the_secret_only_once(db: TestDB) -> None:
    world = build_world(db)
    created = create(db, world, events=["sync.failed", "anomaly.detected", "sync.failed"])
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) == 70
    assert created["events"] == ["anomaly.detected", "sync.failed"] and created["active"] is True
    assert created["created_by"] == str(world.users["admin"]) and created["secret_hint"].endswith(secret[-4:])
    with db.as_user(world.users["admin"]):
        rows = db.execute("select * from public.webhook_endpoints where id = %s", (created["id"],))
        assert len(rows) == 1 and "secret" not in rows[0]
        assert secret not in json.dumps(rows, default=str)
        updated = db.value("select to_jsonb(public.update_webhook_endpoint(%s, description => 'renamed'))",
                           (created["id"],))
        assert secret not in json.dumps(updated) and updated["description"] == "renamed"
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_user(world.users["admin"]):
        db.execute("select secret from private.webhook_secrets")
    stored = db.value("select secret from private.webhook_secrets where endpoint_id = %s", (created["id"],))
    assert stored == secret


def test_rotation_returns_a_new_secret_once_with_an_optional_overlap(db: TestDB) -> None:
    world = build_world(db)
    created = create(db, world)
    with db.as_user(world.users["owner"]):
        rotated = db.value("select public.rotate_webhook_secret(%s, 3600)", (created["id"],))
        immediate = db.value("select public.rotate_webhook_secret(%s)", (created["id"],))
    assert rotated["secret"] != created["secret"] and rotated["previous_secret_valid_until"]
    row = db.one("select secret, previous_secret, previous_valid_until from private.webhook_secrets "
                 "where endpoint_id = %s", (created["id"],))
    assert row == {"secret": immediate["secret"], "previous_secret": None, "previous_valid_until": None}
    assert refused(db, world, "select public.rotate_webhook_secret(%s, -1)", (created["id"],)).sqlstate == "22023"


@pytest.mark.parametrize(("persona", "sqlstate"), [("viewer", "42501"), ("analyst", "42501"), ("manager", "42501"),
                                                   ("owner_b", "42501"), ("outsider", "42501"),
                                                   ("platform_admin", "42501")])
def test_only_webhook_managers_of_the_org_can_create(db: TestDB, persona: str, sqlstate: str) -> None:
    world = build_world(db)
    error = refused(db, world, "select public.create_webhook_endpoint(%s, %s, %s)",
                    (world.ids["org_a"], URL, ["sync.failed"]), persona)
    assert error.sqlstate == sqlstate and "webhooks.manage" in (error.diag.message_primary or "")


def test_another_orgs_admin_can_neither_read_nor_change_endpoints_or_deliveries(db: TestDB) -> None:
    world = build_world(db)
    endpoint, delivery = with_delivery(db, world)
    with db.as_user(world.users["admin"]):
        assert db.value("select count(*) from public.webhook_endpoints") == 1
        assert db.value("select count(*) from public.webhook_deliveries where id = %s", (delivery,)) == 1
        assert db.value("select count(*) from public.webhook_delivery_attempts where delivery_id = %s",
                        (delivery,)) == 1
    for persona in ("owner_b", "outsider", "platform_admin", "viewer", "manager"):
        with db.as_user(world.users[persona]):
            assert db.value("select count(*) from public.webhook_endpoints where org_id = %(org_a)s",
                            world.params()) == 0, persona
            assert db.value("select count(*) from public.webhook_deliveries") == 0, persona
            assert db.value("select count(*) from public.webhook_delivery_attempts") == 0, persona
    other = create(db, world, "owner_b", "https://b.example.com/", org="org_b")
    with db.as_user(world.users["owner_b"]):
        assert [str(r["id"]) for r in db.execute("select id from public.webhook_endpoints")] == [other["id"]]
    for sql, params in (
        ("select public.update_webhook_endpoint(%s, url => 'https://evil.example.com/')", (endpoint["id"],)),
        ("select public.update_webhook_endpoint(%s, active => false)", (endpoint["id"],)),
        ("select public.delete_webhook_endpoint(%s)", (endpoint["id"],)),
        ("select public.rotate_webhook_secret(%s)", (endpoint["id"],)),
        ("select public.replay_webhook_delivery(%s)", (delivery,)),
    ):
        assert refused(db, world, sql, params, "owner_b").sqlstate == "P0002", sql
        assert refused(db, world, sql, params, "manager").sqlstate == "42501", sql
    # Direct writes are closed to everyone: the RPCs are the only way in.
    for sql in (
        "insert into public.webhook_endpoints (org_id, url, events, secret_hint) "
        "values (%(org_a)s, 'https://x.example.com', '{sync.failed}', 'x')",
        "update public.webhook_endpoints set url = 'https://evil.example.com/' where org_id = %(org_a)s",
        "delete from public.webhook_endpoints where org_id = %(org_a)s",
        "insert into public.webhook_deliveries (org_id, endpoint_id, event_id, event_type, retry_until) "
        "select org_id, endpoint_id, event_id, event_type, now() from public.webhook_deliveries",
        "update public.webhook_deliveries set status = 'delivered'",
        "delete from public.webhook_delivery_attempts",
    ):
        for persona in ("admin", "owner_b"):
            assert refused(db, world, sql, world.params(), persona).sqlstate == "42501", (persona, sql)
    assert db.value("select url from public.webhook_endpoints where id = %s", (endpoint["id"],)) == URL


@pytest.mark.parametrize("sql", [
    "select * from public.webhook_endpoints",
    "select * from public.webhook_deliveries",
    "select * from public.webhook_delivery_attempts",
    "select * from public.webhook_event_types",
    "select * from private.outbox",
    "select * from private.webhook_secrets",
    "select public.create_webhook_endpoint(gen_random_uuid(), 'https://a.example.com', '{sync.failed}')",
    "select public.replay_webhook_delivery(gen_random_uuid())",
    "select public.mark_all_notifications_read()",
    "select private.requeue_webhook_delivery(gen_random_uuid())",
])
def test_anon_gets_nothing(db: TestDB, sql: str) -> None:
    build_world(db)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_anon():
        db.execute(sql)


@pytest.mark.parametrize(("url", "message"), [
    ("https://10.0.0.5/", "10.0.0.5, a private network address"),
    ("https://192.168.1.20:8443/hook", "private network address"),
    ("https://[::ffff:172.16.0.1]/", "embeds an IPv4 address"),
    ("http://169.254.169.254/", "169.254.169.254, a cloud metadata address"),
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
    ("https://metadata.google.internal/computeMetadata/v1/", "cloud metadata address"),
    ("https://169.254.10.1/", "link-local address"),
    ("http://localhost", "localhost, a loopback address"),
    ("http://127.0.0.1:5678/webhook/x", "loopback address"),
    ("https://[::1]/", "loopback address"),
    ("https://2130706433/", "non-standard form"),
    ("https://n8n/webhook/x", "not a public domain name"),
    ("https://printer.local/", "not a public domain name"),
    ("http://hooks.example.com/arti", "must use https://"),
    ("ftp://hooks.example.com/", "must use https://"),
    ("https://user:pw@hooks.example.com/", "must not contain credentials"),
    ("hooks.example.com/arti", "absolute URL"),
    ("https://hooks.example.com:70000/", "port"),
    ("", "url is required"),
])
def test_ssrf_guard_refuses_internal_targets_with_clear_messages(db: TestDB, url: str, message: str) -> None:
    world = build_world(db)
    loopback(db, False)
    error = refused(db, world, "select public.create_webhook_endpoint(%s, %s, %s)",
                    (world.ids["org_a"], url, ["sync.failed"]))
    assert error.sqlstate == "22023"
    assert message in (error.diag.message_primary or ""), error.diag.message_primary


def test_loopback_http_is_accepted_only_when_the_development_setting_allows_it(db: TestDB) -> None:
    world = build_world(db)
    loopback(db, True)
    assert create(db, world, url="http://127.0.0.1:5678/webhook/arti")["url"] == "http://127.0.0.1:5678/webhook/arti"
    assert create(db, world, url="http://localhost:5678/webhook/arti")["active"]
    # Loopback allowed does not open private networks or metadata.
    assert refused(db, world, "select public.create_webhook_endpoint(%s, 'http://10.0.0.5/', '{sync.failed}')",
                   (world.ids["org_a"],)).sqlstate == "22023"
    assert refused(db, world, "select public.create_webhook_endpoint(%s, 'http://169.254.169.254/', "
                   "'{sync.failed}')", (world.ids["org_a"],)).sqlstate == "22023"
    db.execute("update private.settings set value = 'n8n' where key = 'webhooks.allowed_private_hosts'")
    assert create(db, world, url="http://n8n:5678/webhook/arti")["url"] == "http://n8n:5678/webhook/arti"


def test_a_url_change_is_checked_too(db: TestDB) -> None:
    world = build_world(db)
    endpoint = create(db, world)
    error = refused(db, world, "select public.update_webhook_endpoint(%s, url => 'http://169.254.169.254/')",
                    (endpoint["id"],))
    assert error.sqlstate == "22023" and "metadata" in (error.diag.message_primary or "")


def test_bad_input_is_22023_and_duplicates_23505(db: TestDB) -> None:
    world = build_world(db)
    org = world.ids["org_a"]
    unknown = refused(db, world, "select public.create_webhook_endpoint(%s, %s, %s)",
                      (org, URL, ["sync.failed", "payment.received"]))
    assert unknown.sqlstate == "22023" and "unknown event type(s): payment.received" in str(unknown)
    assert refused(db, world, "select public.create_webhook_endpoint(%s, %s, '{}')", (org, URL)).sqlstate == "22023"
    assert refused(db, world, "select public.create_webhook_endpoint(%s, %s, null)", (org, URL)).sqlstate == "22023"
    assert refused(db, world, "select public.create_webhook_endpoint(%s, %s, '{sync.failed}', %s)",
                   (org, URL, "x" * 501)).sqlstate == "22023"
    endpoint = create(db, world)
    assert refused(db, world, "select public.create_webhook_endpoint(%s, %s, '{sync.failed}')",
                   (org, URL)).sqlstate == "23505"
    assert refused(db, world, "select public.update_webhook_endpoint(%s, events => '{nope.nope}')",
                   (endpoint["id"],)).sqlstate == "22023"
    assert refused(db, world, "select public.update_webhook_endpoint(gen_random_uuid(), active => false)",
                   ()).sqlstate == "P0002"


def test_delete_removes_the_endpoint_its_secret_deliveries_and_waiting_jobs(db: TestDB) -> None:
    world = build_world(db)
    endpoint, delivery = with_delivery(db, world)
    lock = f"webhook-endpoint:{endpoint['id']}"
    assert db.value("select count(*) from procrastinate.procrastinate_jobs where queueing_lock = %s", (lock,)) == 1
    with db.as_user(world.users["admin"]):
        db.execute("select public.delete_webhook_endpoint(%s)", (endpoint["id"],))
    assert db.value("select count(*) from public.webhook_endpoints where id = %s", (endpoint["id"],)) == 0
    assert db.value("select count(*) from private.webhook_secrets where endpoint_id = %s", (endpoint["id"],)) == 0
    assert db.value("select count(*) from public.webhook_deliveries where id = %s", (delivery,)) == 0
    assert db.value("select count(*) from procrastinate.procrastinate_jobs where queueing_lock = %s", (lock,)) == 0


def test_event_types_are_listed_for_members(db: TestDB) -> None:
    world = build_world(db)
    with db.as_user(world.users["viewer"]):
        names = [r["name"] for r in db.execute("select name from public.webhook_event_types order by name")]
    assert names == sorted(["sync.failed", "account.needs_reauth", "anomaly.detected", "insight.created",
                            "member.invited", "member.joined", "member.role_changed"])


def test_everything_new_is_commented(db: TestDB) -> None:
    missing = db.execute(
        "select c.oid::regclass::text as object from pg_class c "
        "where c.oid::regclass::text in ('private.outbox', 'private.webhook_secrets', 'public.webhook_endpoints', "
        "'public.webhook_deliveries', 'public.webhook_delivery_attempts', 'public.webhook_event_types') "
        "and obj_description(c.oid, 'pg_class') is null "
        "union all "
        "select c.oid::regclass::text || '.' || a.attname from pg_class c join pg_attribute a on a.attrelid = c.oid "
        "where c.oid::regclass::text in ('private.outbox', 'private.webhook_secrets', 'public.webhook_endpoints', "
        "'public.webhook_deliveries', 'public.webhook_delivery_attempts', 'public.webhook_event_types') "
        "and a.attnum > 0 and not a.attisdropped and col_description(c.oid, a.attnum) is null "
        "union all "
        "select p.oid::regprocedure::text from pg_proc p where p.pronamespace in ('public'::regnamespace, "
        "'private'::regnamespace) and (p.proname like '%%webhook%%' or p.proname like '%%notification%%' "
        "or p.proname like 'event_from_%%' or p.proname in ('emit_event', 'fan_out_event', 'notify_event', "
        "'ip_address_kind')) and obj_description(p.oid, 'pg_proc') is null")
    assert missing == []
