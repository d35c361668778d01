-- =============================================================================================
-- Migration: foundation
-- The schemas and extensions every later migration relies on.
--   * private: helpers, secrets and tokens; never exposed by PostgREST, no table grants to the
--     API roles. `authenticated` may use the schema so RLS policies can call the security
--     definer helpers that live there.
--   * extensions: vector (pgvector >= 0.8) and pg_cron, as on a Supabase project.
--   * default privileges: functions are not executable by public/anon/authenticated unless granted
--     one by one.
-- =============================================================================================

create schema if not exists private;
comment on schema private is
'Helpers, secrets and provider tokens. Not exposed through the API; no table is granted to anon or authenticated.';
revoke all on schema private from public;
grant usage on schema private to authenticated, service_role;

create extension if not exists vector with schema extensions;
create extension if not exists pg_cron;
revoke all on schema cron from public;

-- Functions created from now on are executable only where their file grants it, one by one.
alter default privileges for role postgres in schema public revoke execute on functions from public;
alter default privileges for role postgres in schema public revoke execute on functions from anon;
alter default privileges for role postgres in schema public revoke execute on functions from authenticated;
alter default privileges for role postgres in schema private revoke execute on functions from public;
