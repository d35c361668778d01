"""Data integrity by construction (issue 16 items 1 and 5): no row points into another organization, users write
insights only through /insights/ask's private.record_answer, and no DELETE reaches Realtime.

The first test reads the catalog, so a foreign key added later is checked without touching this file. The
others are the attacks that worked before migration 20261130001200_data_integrity_and_bounds.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

from tests.factories import World, build_world
from tests.harness import TestDB

ORG_SCOPED_FOREIGN_KEYS_SQL = """
with org_scoped as (
    select c.oid, a.attnum as org_attnum
    from pg_class as c
    join pg_namespace as n on n.oid = c.relnamespace
    join pg_attribute as a on a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped
    where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema')
)
select k.conname, k.conrelid::regclass::text as child, k.confrelid::regclass::text as parent,
       pg_get_constraintdef(k.oid) as definition,
       exists (
           select 1 from unnest(k.conkey, k.confkey) as pair (child_col, parent_col)
           where pair.child_col = child.org_attnum and pair.parent_col = parent.org_attnum
       ) as pairs_org_ids
from pg_constraint as k
join org_scoped as child on child.oid = k.conrelid
join org_scoped as parent on parent.oid = k.confrelid
where k.contype = 'f'
order by 2, 1
"""


def test_no_foreign_key_between_org_scoped_tables_leaves_out_org_id(db: TestDB) -> None:
    """Any foreign key from a table with org_id to another table with org_id must pair the two org_ids:
    (org_id, x) -> (org_id, id). A single-column key lets a row point at another organization's row."""
    keys = db.execute(ORG_SCOPED_FOREIGN_KEYS_SQL)
    assert len(keys) >= 10, "the catalog query found too few keys to mean anything"
    offenders = [f"{k['child']} -> {k['parent']}: {k['definition']}" for k in keys if not k["pairs_org_ids"]]
    assert offenders == [], "foreign keys that can point into another organization:\n" + "\n".join(offenders)


# -- the attacks of issue 16 item 1 ----------------------------------------------------------------------------

def analyst_of_b(db: TestDB, world: World) -> uuid.UUID:
    analyst = db.create_user()
    db.execute("insert into public.memberships (org_id, user_id, role) values (%s, %s, 'analyst')",
               (world.ids["org_b"], analyst))
    return analyst


def test_an_analyst_of_b_cannot_insert_an_insight_about_an_artist_of_a(db: TestDB) -> None:
    world = build_world(db)
    analyst = analyst_of_b(db, world)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_user(analyst):
        db.execute("insert into public.insights (org_id, artist_id, kind, title, body, question) "
                   "values (%(org_b)s, %(artist_a)s, 'answer', 'Q', 'A', 'Q?')", world.params())
    assert db.value("select count(*) from public.insights where artist_id = %(artist_a)s and org_id = %(org_b)s",
                    world.params()) == 0


def test_users_write_no_insight_directly_not_even_in_their_own_organization(db: TestDB) -> None:
    """Each insert fanned out an event, notifications and webhook deliveries, with no limit: answers are written
    only by /insights/ask (rate-limited), through private.record_answer."""
    world = build_world(db)
    for persona in ("analyst", "owner"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_user(world.users[persona]):
            db.execute("insert into public.insights (org_id, kind, title, body, question) "
                       "values (%(org_a)s, 'answer', 'Q', 'A', 'Q?')", world.params())
    assert db.value("select has_table_privilege('authenticated', 'public.insights', 'insert')") is False
    assert db.value("select has_any_column_privilege('authenticated', 'public.insights', 'insert')") is False


CROSS_INSERTS = {
    "insights.artist_id": "insert into public.insights (org_id, artist_id, kind, title, body, dedupe_key) "
                          "values (%(org_b)s, %(target)s, 'anomaly', 'Spike', 'Up.', 'k-cross')",
    "insights.account_id": "insert into public.insights (org_id, account_id, kind, title, body, dedupe_key) "
                           "values (%(org_b)s, %(target)s, 'anomaly', 'Spike', 'Up.', 'k-cross')",
    "documents.artist_id": "insert into public.documents (org_id, artist_id, source, source_key, content) "
                           "values (%(org_b)s, %(target)s, 'metrics', 'k-cross', 'A fact.')",
}


@pytest.mark.parametrize("column", sorted(CROSS_INSERTS))
def test_no_row_of_b_can_reference_a_row_of_a_even_for_the_system(db: TestDB, column: str) -> None:
    """Even the service (RLS bypassed) cannot write it, and the refusal is the same for A's real id and an unknown
    one: no existence oracle."""
    world = build_world(db)
    target = world.ids["account_a" if column.endswith("account_id") else "artist_a"]
    outcomes = []
    for value in (target, uuid.uuid4()):
        with pytest.raises(psycopg.errors.ForeignKeyViolation) as caught, db.savepoint():
            db.execute(CROSS_INSERTS[column], {**world.params(), "target": value})
        outcomes.append(caught.value.sqlstate)
    assert outcomes == ["23503", "23503"]


def test_other_cross_org_references_are_refused(db: TestDB) -> None:
    """metric_snapshots.sync_run_id, private.oauth_states.artist_id, webhook deliveries and attempts."""
    world = build_world(db)
    p = world.params()
    sync_b = db.value("insert into public.sync_runs (org_id, account_id, trigger) values (%(org_b)s, %(account_b)s, "
                      "'schedule') returning id", p)
    attempts = {
        "snapshot": ("insert into public.metric_snapshots (org_id, account_id, sync_run_id, endpoint, payload) "
                     "values (%(org_a)s, %(account_a)s, %(sync_b)s, '/x', '{}')"),
        "oauth_state": ("insert into private.oauth_states (state_hash, provider, user_id, org_id, artist_id, "
                        "redirect_to) values ('\\x01', 'spotify', %(user_owner)s, %(org_a)s, %(artist_b)s, "
                        "'https://app.test')"),
    }
    for sql in attempts.values():
        with pytest.raises(psycopg.errors.ForeignKeyViolation), db.savepoint():
            db.execute(sql, {**p, "sync_b": sync_b})
    event_b = db.value("insert into private.outbox (org_id, type, payload) values (%(org_b)s, 'sync.failed', '{}') "
                       "returning id", p)
    endpoint_a = db.value("insert into public.webhook_endpoints (org_id, url, events, secret_hint) values "
                          "(%(org_a)s, 'https://hooks.example.com/x', '{sync.failed}', 'x') returning id", p)
    with pytest.raises(psycopg.errors.ForeignKeyViolation), db.savepoint():
        db.execute("insert into public.webhook_deliveries (org_id, endpoint_id, event_id, event_type, retry_until) "
                   "values (%(org_a)s, %(endpoint)s, %(event)s, 'sync.failed', now())",
                   {**p, "endpoint": endpoint_a, "event": event_b})
    event_a = db.value("insert into private.outbox (org_id, type, payload) values (%(org_a)s, 'sync.failed', '{}') "
                       "returning id", p)
    delivery_a = db.value("select id from public.webhook_deliveries where event_id = %s", (event_a,))
    assert delivery_a is not None
    with pytest.raises(psycopg.errors.ForeignKeyViolation), db.savepoint():
        db.execute("insert into public.webhook_delivery_attempts (delivery_id, org_id, attempt) "
                   "values (%s, %s, 1)", (delivery_a, world.ids["org_b"]))


def test_a_deleting_its_artist_never_deletes_rows_of_b(db: TestDB) -> None:
    """Before the composite keys, B's rows could point at A's artist, and A's delete cascaded into B."""
    world = build_world(db)
    p = world.params()
    for sql in ("insert into public.insights (org_id, artist_id, kind, title, body, dedupe_key) "
                "values (%(org_b)s, %(artist_a)s, 'anomaly', 'Spike', 'Up.', 'k-cross')",
                "insert into public.documents (org_id, artist_id, source, source_key, content) "
                "values (%(org_b)s, %(artist_a)s, 'metrics', 'k-cross', 'A fact.')"):
        try:
            with db.savepoint():
                db.execute(sql, p)
        except psycopg.errors.ForeignKeyViolation:
            pass  # refused: what the composite key is for
    before = {t: db.value(f"select count(*) from public.{t} where org_id = %(org_b)s", p)
              for t in ("insights", "documents")}
    with db.as_user(world.users["manager"]):
        assert db.execute("delete from public.artists where id = %(artist_a)s returning id", p)
    after = {t: db.value(f"select count(*) from public.{t} where org_id = %(org_b)s", p)
             for t in ("insights", "documents")}
    assert after == before


# -- the one write path for users: private.record_answer -------------------------------------------------------

RECORD = "select private.record_answer(%s, %s, %s, %s, %s, %s, %s)"


def record(db: TestDB, user: uuid.UUID, org: uuid.UUID, artist: uuid.UUID | None = None, *,
           question: str = "How did followers change?", body: str = "They grew.", citations: Any = (),
           mode: str = "extractive", evidence: Any = None) -> Any:
    """private.record_answer as the user; `citations` and `evidence` as JSON (a str is sent as it is)."""
    cited = citations if isinstance(citations, str) else json.dumps(list(citations))
    proof = json.dumps({"retrieved": []} if evidence is None else evidence)
    with db.as_user(user):
        return db.value(RECORD, (org, artist, question, body, cited, mode, proof))


def refusal(db: TestDB, user: uuid.UUID, org: uuid.UUID, artist: uuid.UUID | None = None,
            **kwargs: Any) -> tuple[str | None, str]:
    with pytest.raises(psycopg.Error) as caught, db.savepoint():
        record(db, user, org, artist, **kwargs)
    return caught.value.sqlstate, caught.value.diag.message_primary or ""


def test_record_answer_stores_the_callers_answer_once_checked(db: TestDB) -> None:
    world = build_world(db)
    p = world.params()
    insight = record(db, world.users["analyst"], p["org_a"], p["artist_a"], citations=[p["document_a"]])
    row = db.one("select kind::text, created_by, artist_id, citations, title from public.insights where id = %s",
                 (insight,))
    assert row == {"kind": "answer", "created_by": world.users["analyst"], "artist_id": p["artist_a"],
                   "citations": [p["document_a"]], "title": "How did followers change?"}


def test_record_answer_gives_the_same_answer_for_an_unknown_artist_and_another_orgs(db: TestDB) -> None:
    world = build_world(db)
    analyst, org_a = world.users["analyst"], world.ids["org_a"]
    foreign = refusal(db, analyst, org_a, world.ids["artist_b"])
    unknown = refusal(db, analyst, org_a, uuid.uuid4())
    assert foreign == unknown == ("P0002", "artist not found in this organization")
    assert db.value("select count(*) from public.insights where kind = 'answer'") == 0


@pytest.mark.parametrize(("kwargs", "sqlstate", "fragment"), [
    ({"question": "Q?"}, "22023", "question must be 3-2000 characters"),
    ({"question": "q" * 2001}, "22023", "question must be 3-2000 characters"),
    ({"body": ""}, "22023", "body must be 1-24000 characters"),
    ({"body": "b" * 24001}, "22023", "body must be 1-24000 characters"),
    ({"citations": list(range(1, 52))}, "22023", "at most 50 document ids"),
    ({"citations": '{"id": 1}'}, "22023", "at most 50 document ids"),
    ({"citations": '["1; drop"]'}, "22023", "at most 50 document ids"),
    ({"citations": "foreign"}, "22023", "documents of this organization"),
    ({"mode": "oracle"}, "22023", "answer_mode must be llm or extractive"),
    ({"evidence": {"x": "e" * 16400}}, "22023", "at most 16384 bytes"),
    ({"evidence": []}, "22023", "evidence must be a JSON object"),
])
def test_record_answer_bounds_every_input(db: TestDB, kwargs: dict[str, Any], sqlstate: str, fragment: str) -> None:
    world = build_world(db)
    if kwargs.get("citations") == "foreign":
        doc_b = db.value("insert into public.documents (org_id, artist_id, source, source_key, content) "
                         "values (%(org_b)s, %(artist_b)s, 'metrics', 'kb', 'B fact.') returning id", world.params())
        kwargs = {"citations": [world.ids["document_a"], doc_b]}
    state, message = refusal(db, world.users["analyst"], world.ids["org_a"], **kwargs)
    assert (state, fragment in message) == (sqlstate, True), message


def test_record_answer_refuses_who_may_not_ask(db: TestDB) -> None:
    world = build_world(db)
    for persona in ("viewer", "outsider", "owner_b"):
        assert refusal(db, world.users[persona], world.ids["org_a"])[0] == "42501", persona
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_anon():
        db.execute(RECORD, (world.ids["org_a"], None, "How?", "b", "[]", "llm", "{}"))


# -- Realtime ----------------------------------------------------------------------------------------------------

def test_no_delete_reaches_realtime(db: TestDB) -> None:
    """postgres_changes cannot apply RLS to a deleted row and sent its primary key to every subscriber of the
    table. Realtime decodes only the actions its publication publishes (pubinsert, pubupdate, pubdelete)."""
    tables = {r["tablename"] for r in db.execute(
        "select tablename from pg_publication_tables where pubname = 'supabase_realtime'")}
    assert {"sync_runs", "notifications", "insights"} <= tables
    pub = db.one("select pubinsert, pubupdate, pubdelete, pubtruncate from pg_publication "
                 "where pubname = 'supabase_realtime'")
    assert pub == {"pubinsert": True, "pubupdate": True, "pubdelete": False, "pubtruncate": False}
