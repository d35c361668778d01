"""A snapshot of everything a database's schema is made of, and a readable diff of two snapshots.

`snapshot(conn)` reads the catalog of the connected database into plain data: {section: {object: fields}}.
Two databases built different ways (arti's migration runner and `supabase db push`, or one database before
and after a test run) are equal when their snapshots are. `diff(a, b)` says what differs, one line per field.

What it covers: schemas, extensions and their schemas, functions (definition, owner, ACL, config, security
definer, volatility, comment), tables/views/sequences (kind, owner, ACL, RLS, options, comment), columns (type,
default, nullability, identity, generation, column grants, comment), constraints, indexes, view definitions,
triggers, event triggers, policies, types (enums, domains, composites), default privileges (pg_default_acl),
roles (attributes, memberships, settings), publications and their tables, pg_cron jobs and the migration
history. Objects that belong to an extension are left out (the extension's version stands for them); ACLs are
compared as sets, with a NULL ACL read as the built-in default it stands for.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.rows import dict_row

Snapshot = dict[str, dict[str, dict[str, Any]]]

# Schemas that belong to Postgres itself.
SYSTEM_SCHEMAS = "('pg_catalog', 'information_schema', 'pg_toast')"
USER_NAMESPACE = f"n.nspname not in {SYSTEM_SCHEMAS} and n.nspname !~ '^pg_(toast_)?temp_'"


def _not_in_extension(catalog: str, alias: str) -> str:
    return (f"not exists (select 1 from pg_depend d where d.classid = '{catalog}'::regclass "
            f"and d.objid = {alias}.oid and d.deptype = 'e')")


def _acl(expr: str) -> str:
    """A sorted text array of an aclitem[] expression (so grant order does not matter)."""
    return f"(select coalesce(array_agg(a::text order by a::text), '{{}}') from unnest({expr}) as a)"


RELATION_ACL = "coalesce(c.relacl, acldefault(case c.relkind when 'S' then 's' else 'r' end::\"char\", c.relowner))"

QUERIES: dict[str, str] = {
    "schemas": f"""
        select n.nspname as key, pg_get_userbyid(n.nspowner) as owner,
               {_acl("coalesce(n.nspacl, acldefault('n', n.nspowner))")} as acl,
               obj_description(n.oid, 'pg_namespace') as comment
        from pg_namespace as n
        where {USER_NAMESPACE} and {_not_in_extension('pg_namespace', 'n')}
    """,
    "extensions": """
        select e.extname as key, e.extversion as version, e.extnamespace::regnamespace::text as schema,
               pg_get_userbyid(e.extowner) as owner
        from pg_extension as e
    """,
    "functions": f"""
        select p.oid::regprocedure::text as key,
               case p.prokind when 'f' then 'function' when 'p' then 'procedure'
                              when 'a' then 'aggregate' else 'window' end as kind,
               pg_get_userbyid(p.proowner) as owner,
               {_acl("coalesce(p.proacl, acldefault('f', p.proowner))")} as acl,
               p.prosecdef as security_definer,
               coalesce(array_to_string(p.proconfig, '; '), '') as config,
               p.provolatile as volatility, p.proparallel as parallel, p.proleakproof as leakproof,
               p.proisstrict as strict,
               case when p.prokind in ('f', 'p') then pg_get_functiondef(p.oid) end as definition,
               obj_description(p.oid, 'pg_proc') as comment
        from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
        where {USER_NAMESPACE} and {_not_in_extension('pg_proc', 'p')}
    """,
    "relations": f"""
        select format('%s.%s', n.nspname, c.relname) as key,
               case c.relkind when 'r' then 'table' when 'p' then 'partitioned table' when 'v' then 'view'
                              when 'm' then 'materialized view' when 'S' then 'sequence'
                              when 'f' then 'foreign table' end as kind,
               pg_get_userbyid(c.relowner) as owner,
               {_acl(RELATION_ACL)} as acl,
               c.relrowsecurity as row_security, c.relforcerowsecurity as force_row_security,
               c.relpersistence as persistence, c.relreplident as replica_identity,
               coalesce(array_to_string(c.reloptions, ', '), '') as options,
               pg_get_expr(c.relpartbound, c.oid) as partition_bound,
               obj_description(c.oid, 'pg_class') as comment
        from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
        where {USER_NAMESPACE} and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
          and {_not_in_extension('pg_class', 'c')}
    """,
    "columns": f"""
        select format('%s.%s.%s', n.nspname, c.relname, a.attname) as key,
               row_number() over (partition by c.oid order by a.attnum) as position,
               format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as not_null,
               pg_get_expr(ad.adbin, ad.adrelid) as default, a.attidentity as identity,
               a.attgenerated as generated,
               case when a.attcollation <> t.typcollation then a.attcollation::regcollation::text end as collation,
               {_acl("a.attacl")} as acl,
               col_description(c.oid, a.attnum) as comment
        from pg_attribute as a
        join pg_class as c on c.oid = a.attrelid
        join pg_namespace as n on n.oid = c.relnamespace
        join pg_type as t on t.oid = a.atttypid
        left join pg_attrdef as ad on ad.adrelid = a.attrelid and ad.adnum = a.attnum
        where {USER_NAMESPACE} and c.relkind in ('r', 'p', 'v', 'm', 'f') and a.attnum > 0
          and not a.attisdropped and {_not_in_extension('pg_class', 'c')}
    """,
    "constraints": f"""
        select format('%s.%s.%s', n.nspname, coalesce(c.relname, ty.typname), co.conname) as key,
               co.contype as type, pg_get_constraintdef(co.oid) as definition,
               co.condeferrable as deferrable, co.condeferred as deferred, co.convalidated as validated
        from pg_constraint as co
        join pg_namespace as n on n.oid = co.connamespace
        left join pg_class as c on c.oid = co.conrelid
        left join pg_type as ty on ty.oid = co.contypid
        where {USER_NAMESPACE}
          and (c.oid is null or {_not_in_extension('pg_class', 'c')})
          and (ty.oid is null or {_not_in_extension('pg_type', 'ty')})
    """,
    "indexes": f"""
        select format('%s.%s', n.nspname, c.relname) as key, pg_get_indexdef(c.oid) as definition,
               i.indisprimary as primary_key, i.indisunique as unique, i.indisreplident as replica_identity
        from pg_index as i
        join pg_class as c on c.oid = i.indexrelid
        join pg_class as tbl on tbl.oid = i.indrelid
        join pg_namespace as n on n.oid = c.relnamespace
        where {USER_NAMESPACE} and {_not_in_extension('pg_class', 'tbl')}
    """,
    "views": f"""
        select format('%s.%s', n.nspname, c.relname) as key, pg_get_viewdef(c.oid, true) as definition
        from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
        where {USER_NAMESPACE} and c.relkind in ('v', 'm') and {_not_in_extension('pg_class', 'c')}
    """,
    "sequences": f"""
        select format('%s.%s', n.nspname, c.relname) as key, format_type(s.seqtypid, null) as type,
               s.seqstart as start, s.seqincrement as increment, s.seqmin as min, s.seqmax as max,
               s.seqcache as cache, s.seqcycle as cycle
        from pg_sequence as s
        join pg_class as c on c.oid = s.seqrelid
        join pg_namespace as n on n.oid = c.relnamespace
        where {USER_NAMESPACE} and {_not_in_extension('pg_class', 'c')}
    """,
    "triggers": f"""
        select format('%s.%s.%s', n.nspname, c.relname, t.tgname) as key,
               pg_get_triggerdef(t.oid) as definition, t.tgenabled as enabled,
               obj_description(t.oid, 'pg_trigger') as comment
        from pg_trigger as t
        join pg_class as c on c.oid = t.tgrelid
        join pg_namespace as n on n.oid = c.relnamespace
        where not t.tgisinternal and {USER_NAMESPACE} and {_not_in_extension('pg_class', 'c')}
    """,
    "event_triggers": f"""
        select e.evtname as key, e.evtevent as event, e.evtfoid::regprocedure::text as function,
               e.evtenabled as enabled, coalesce(array_to_string(e.evttags, ', '), '') as tags,
               pg_get_userbyid(e.evtowner) as owner
        from pg_event_trigger as e
        where {_not_in_extension('pg_event_trigger', 'e')}
    """,
    "policies": f"""
        select format('%s.%s.%s', n.nspname, c.relname, p.polname) as key,
               p.polcmd as command, p.polpermissive as permissive,
               (select coalesce(array_agg(case r when 0 then 'public' else pg_get_userbyid(r) end
                                          order by 1), '{{}}')
                from unnest(p.polroles) as r) as roles,
               pg_get_expr(p.polqual, p.polrelid) as using,
               pg_get_expr(p.polwithcheck, p.polrelid) as with_check
        from pg_policy as p
        join pg_class as c on c.oid = p.polrelid
        join pg_namespace as n on n.oid = c.relnamespace
        where {USER_NAMESPACE}
    """,
    "types": f"""
        select format('%s.%s', n.nspname, t.typname) as key,
               case t.typtype when 'e' then 'enum' when 'd' then 'domain' when 'c' then 'composite'
                              when 'r' then 'range' when 'm' then 'multirange' else 'base' end as kind,
               pg_get_userbyid(t.typowner) as owner,
               {_acl("coalesce(t.typacl, acldefault('T', t.typowner))")} as acl,
               case t.typtype
                   when 'e' then (select string_agg(quote_literal(e.enumlabel), ', ' order by e.enumsortorder)
                                  from pg_enum as e where e.enumtypid = t.oid)
                   when 'd' then format_type(t.typbasetype, t.typtypmod)
                       || case when t.typnotnull then ' not null' else '' end
                       || coalesce(' default ' || t.typdefault, '')
                   when 'c' then (select string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)),
                                                    ', ' order by a.attnum)
                                  from pg_attribute as a where a.attrelid = t.typrelid and a.attnum > 0
                                    and not a.attisdropped)
               end as definition,
               obj_description(t.oid, 'pg_type') as comment
        from pg_type as t join pg_namespace as n on n.oid = t.typnamespace
        where {USER_NAMESPACE} and t.typtype in ('e', 'd', 'c', 'r', 'b')
          -- not the row types of tables and views, nor array types (both follow from their owner)
          and (t.typtype <> 'c' or (select c.relkind from pg_class as c where c.oid = t.typrelid) = 'c')
          and not (t.typcategory = 'A' and t.typelem <> 0)
          and {_not_in_extension('pg_type', 't')}
    """,
    "default_privileges": f"""
        select format('%s in %s on %s', pg_get_userbyid(d.defaclrole),
                      coalesce(d.defaclnamespace::regnamespace::text, 'every schema'),
                      case d.defaclobjtype when 'r' then 'tables' when 'S' then 'sequences'
                                           when 'f' then 'functions' when 'T' then 'types'
                                           when 'n' then 'schemas' end) as key,
               {_acl("d.defaclacl")} as acl
        from pg_default_acl as d
    """,
    "roles": """
        select r.rolname as key, r.rolsuper as superuser, r.rolinherit as inherit,
               r.rolcreaterole as createrole, r.rolcreatedb as createdb, r.rolcanlogin as login,
               r.rolreplication as replication, r.rolbypassrls as bypassrls, r.rolconnlimit as connection_limit,
               coalesce(array_to_string(r.rolconfig, '; '), '') as config,
               (select coalesce(array_agg(g.rolname::text || case when m.admin_option then ' (admin)' else '' end
                                          order by g.rolname), '{}')
                from pg_auth_members as m join pg_roles as g on g.oid = m.roleid
                where m.member = r.oid) as member_of
        from pg_roles as r
        where r.rolname !~ '^pg_'
    """,
    "database_settings": """
        select coalesce(pg_get_userbyid(nullif(s.setrole, 0)), 'every role') as key,
               array_to_string(s.setconfig, '; ') as config
        from pg_db_role_setting as s
        where s.setdatabase = (select oid from pg_database where datname = current_database())
    """,
    "publications": """
        select p.pubname as key, pg_get_userbyid(p.pubowner) as owner, p.puballtables as all_tables,
               p.pubinsert as insert, p.pubupdate as update, p.pubdelete as delete, p.pubtruncate as truncate,
               p.pubviaroot as via_root,
               (select coalesce(array_agg(format('%s.%s', pt.schemaname, pt.tablename)
                                          || coalesce(' (' || array_to_string(pt.attnames, ', ') || ')', '')
                                          || coalesce(' where ' || pt.rowfilter, '')
                                          order by pt.schemaname, pt.tablename), '{}')
                from pg_publication_tables as pt where pt.pubname = p.pubname) as tables
        from pg_publication as p
    """,
}

# Data that is part of what a database is: the schedules and the migration history (read when present).
OPTIONAL_QUERIES: dict[str, tuple[str, str]] = {
    "cron_jobs": ("cron.job", """
        select coalesce(j.jobname, j.command) as key, j.schedule, j.command, j.database, j.username, j.active
        from cron.job as j
    """),
    "migration_history": ("supabase_migrations.schema_migrations", """
        select m.version as key, m.name, md5(coalesce(array_to_string(m.statements, e'\\n;\\n'), '')) as statements_md5,
               coalesce(cardinality(m.statements), 0) as statement_count
        from supabase_migrations.schema_migrations as m
    """),
}


def snapshot(conn: psycopg.Connection[Any]) -> Snapshot:
    """The catalog of `conn`'s database as {section: {object key: {field: value}}}, read in a transaction (a
    savepoint when one is open) that is rolled back."""
    result: Snapshot = {}
    # Names and types in definitions are printed relative to the search_path: an empty one qualifies them all,
    # so two connections always print alike. Rolled back at the end (nothing here writes).
    with conn.transaction(force_rollback=True), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select set_config('search_path', '', true)")
        for section, sql in QUERIES.items():
            result[section] = _rows_by_key(cur.execute(sql).fetchall(), section)
        for section, (relation, sql) in OPTIONAL_QUERIES.items():
            present = cur.execute("select to_regclass(%s) is not null as present", (relation,)).fetchone()
            result[section] = _rows_by_key(cur.execute(sql).fetchall(), section) if present and present["present"] \
                else {}
    return result


def _rows_by_key(rows: Iterable[dict[str, Any]], section: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = base = str(row.pop("key"))
        n = 1
        while key in out:  # the same name twice (not expected in one catalog): keep both visible
            n += 1
            key = f"{base} #{n}"
        out[key] = row
    return out


def diff(left: Snapshot, right: Snapshot, left_name: str = "left", right_name: str = "right",
         *, context: int = 2, max_lines_per_field: int = 40) -> list[str]:
    """What differs between two snapshots, one line per object present on one side only and one entry per
    differing field (multi-line values, such as function definitions, as a short unified diff). Empty when
    the snapshots are equal."""
    lines: list[str] = []
    for section in sorted(set(left) | set(right)):
        a, b = left.get(section, {}), right.get(section, {})
        for key in sorted(set(a) | set(b)):
            if key not in b:
                lines.append(f"{section}: {key}: only in {left_name}{_summary(a[key])}")
            elif key not in a:
                lines.append(f"{section}: {key}: only in {right_name}{_summary(b[key])}")
            elif a[key] != b[key]:
                for field in sorted(set(a[key]) | set(b[key])):
                    va, vb = a[key].get(field), b[key].get(field)
                    if va == vb:
                        continue
                    if isinstance(va, str) and isinstance(vb, str) and ("\n" in va or "\n" in vb):
                        body = list(difflib.unified_diff(va.splitlines(), vb.splitlines(), left_name, right_name,
                                                         n=context, lineterm=""))
                        if len(body) > max_lines_per_field:
                            body = [*body[:max_lines_per_field], f"... ({len(body) - max_lines_per_field} more)"]
                        lines.append(f"{section}: {key}: {field} differs:\n    " + "\n    ".join(body))
                    else:
                        lines.append(f"{section}: {key}: {field}: {left_name} {va!r} != {right_name} {vb!r}")
    return lines


def _summary(fields: dict[str, Any]) -> str:
    """A short description of an object shown on one side only (its one-line definition, when it has one)."""
    for name in ("definition", "kind", "version", "acl"):
        value = fields.get(name)
        if value not in (None, "", []):
            text = " ".join(str(value).split())
            return f" ({name}: {text[:160]}{'...' if len(text) > 160 else ''})"
    return ""
