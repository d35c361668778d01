-- Run once by the supabase/postgres image on an empty data volume, as supabase_admin (mounted into
-- /docker-entrypoint-initdb.d/migrations/ by docker-compose.yml). Realtime keeps its tenants and its
-- own migrations in `_realtime` (DB_AFTER_CONNECT_QUERY in docker-compose.yml); it connects as
-- supabase_admin, which therefore owns the schema. Never exposed through PostgREST.
create schema if not exists _realtime authorization supabase_admin;
