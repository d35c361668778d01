-- =============================================================================================
-- Migration: supabase_placement
-- What Supabase's Security Advisor and CLI expect of where things live, for databases built by
-- any path (`arti db migrate`, `supabase db push`, a project whose dashboard enabled extensions):
--   * pg_cron lives in pg_catalog (lint 0014, extension_in_public). `create extension pg_cron`
--     without a schema, as the foundation migration did, lands in the first schema of the
--     search path: public. pg_cron cannot be relocated, so it is dropped and created again
--     with its schedules kept (same names, schedules and commands). Where it is already in
--     pg_catalog nothing happens.
--   * pg_graphql is dropped where it is installed (Supabase enables it by default). The frontend
--     reads through PostgREST (supabase-js) only; GraphQL would expose every table a second way and
--     Security Advisor lint 0027 warns once per table while it is on. Decision written in README.
--   * Functions created in public after this are executable only where granted one by one: the
--     foundation migration revoked EXECUTE from public, anon and authenticated in the default
--     privileges, but an earlier compatibility bootstrap granted it again on every run. Revoking
--     again is a no-op where nothing was re-granted.
-- =============================================================================================

do $cron$
declare
    saved jsonb;
    job jsonb;
begin
    if exists (
        select 1 from pg_extension
        where extname = 'pg_cron' and extnamespace <> 'pg_catalog'::regnamespace
    ) then
        select coalesce(jsonb_agg(jsonb_build_object(
            'name', j.jobname, 'schedule', j.schedule, 'command', j.command, 'active', j.active
        ) order by j.jobid), '[]'::jsonb)
        into saved
        from cron.job as j;
        drop extension pg_cron;
        create extension pg_cron with schema pg_catalog;
        for job in select value from jsonb_array_elements(saved) loop
            if job ->> 'name' is null then
                perform cron.schedule(job ->> 'schedule', job ->> 'command');
            else
                perform cron.schedule(job ->> 'name', job ->> 'schedule', job ->> 'command');
            end if;
            if not (job ->> 'active')::boolean then
                update cron.job set active = false where jobname = job ->> 'name';
            end if;
        end loop;
    end if;
end
$cron$;
revoke all on schema cron from public;

drop extension if exists pg_graphql;

alter default privileges for role postgres in schema public revoke execute on functions from public;
alter default privileges for role postgres in schema public revoke execute on functions from anon;
alter default privileges for role postgres in schema public revoke execute on functions from authenticated;
