"""Supabase Security Advisor, enforced from the catalog (issue 15 item 6).

* Lints 0028/0029: no SECURITY DEFINER function in a schema PostgREST exposes (pgrst.db_schemas). The public RPCs
  run as the caller; their privileged steps are private twins (schema private is not exposed).
* Lint 0014: no extension, and no object of an extension, in an exposed schema.
* Lint 0011: every function in an exposed schema pins its search_path.
"""

from __future__ import annotations

from tests.harness import TestDB


def exposed_schemas(db: TestDB) -> list[str]:
    schemas = [s.strip() for s in db.value("select current_setting('pgrst.db_schemas')").split(",")]
    assert "public" in schemas
    return schemas


def test_no_security_definer_function_in_an_exposed_schema(db: TestDB) -> None:
    rows = db.execute("select p.oid::regprocedure::text as fn from pg_proc as p "
                      "join pg_namespace as n on n.oid = p.pronamespace "
                      "where n.nspname = any(%s) and p.prosecdef order by 1", (exposed_schemas(db),))
    assert [r["fn"] for r in rows] == []


def test_no_extension_in_an_exposed_schema(db: TestDB) -> None:
    schemas = exposed_schemas(db)
    extensions = db.execute("select extname from pg_extension where extnamespace::regnamespace::text = any(%s)",
                            (schemas,))
    assert extensions == []
    members = db.execute(
        "select pg_describe_object(d.classid, d.objid, d.objsubid) as object from pg_depend as d "
        "where d.deptype = 'e' and coalesce("
        "  (select relnamespace from pg_class where d.classid = 'pg_class'::regclass and oid = d.objid),"
        "  (select pronamespace from pg_proc where d.classid = 'pg_proc'::regclass and oid = d.objid),"
        "  (select typnamespace from pg_type where d.classid = 'pg_type'::regclass and oid = d.objid)"
        ")::regnamespace::text = any(%s)", (schemas,))
    assert members == []


def test_every_function_in_an_exposed_schema_pins_its_search_path(db: TestDB) -> None:
    rows = db.execute("select p.oid::regprocedure::text as fn from pg_proc as p "
                      "join pg_namespace as n on n.oid = p.pronamespace "
                      "where n.nspname = any(%s) and not exists (select 1 from unnest(p.proconfig) as c "
                      "where c like 'search\\_path=%%') order by 1", (exposed_schemas(db),))
    assert [r["fn"] for r in rows] == []


def test_every_public_rpc_with_a_privileged_step_delegates_to_a_private_twin(db: TestDB) -> None:
    """The twin of each public RPC that needs privileges is private, security definer, empty search_path."""
    rows = db.execute(
        "select pub.proname, priv.prosecdef, priv.proconfig from pg_proc as pub "
        "join pg_proc as priv on priv.proname = pub.proname and priv.pronamespace = 'private'::regnamespace "
        "where pub.pronamespace = 'public'::regnamespace")
    assert len(rows) >= 13
    for row in rows:
        assert row["prosecdef"] and 'search_path=""' in row["proconfig"], row["proname"]
