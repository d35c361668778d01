-- ============================================================================================
-- Supabase compatibility bootstrap (embedded mode only)
--
-- A Supabase database ships roles, the auth schema and a few defaults that application
-- migrations and RLS policies rely on. This file recreates the small part of that surface the
-- project uses, from Supabase's documented behaviour, so that RLS and RPCs behave here exactly as
-- they do behind PostgREST. It is applied only where the database has no `auth` schema of its
-- own (never on a real Supabase database) and is idempotent.
-- ============================================================================================

-- Roles PostgREST switches to per request (docs: "Postgres Roles" / PostgREST authentication).
do $roles$
begin
    if not exists (select 1 from pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'service_role') then
        create role service_role nologin noinherit bypassrls;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'authenticator') then
        create role authenticator login noinherit password 'postgres';
    end if;
    grant anon, authenticated, service_role to authenticator;
    grant anon, authenticated, service_role to postgres;
end
$roles$;

-- Schemas: extensions live outside public so PostgREST never exposes their objects.
create schema if not exists extensions;
create schema if not exists auth;
create schema if not exists graphql_public;
comment on schema auth is 'arti-compat: stand-in for the GoTrue auth schema (embedded mode only)';
comment on schema extensions is 'Extensions live here, never in public (as on Supabase).';

grant usage on schema extensions to anon, authenticated, service_role;
grant usage on schema auth to anon, authenticated, service_role;
grant usage on schema graphql_public to anon, authenticated, service_role;

create extension if not exists pgcrypto with schema extensions;
create extension if not exists "uuid-ossp" with schema extensions;

-- auth.users: the columns GoTrue maintains that applications reference.
create table if not exists auth.users (
    instance_id uuid,
    id uuid primary key default extensions.gen_random_uuid(),
    aud varchar(255) default 'authenticated',
    role varchar(255) default 'authenticated',
    email varchar(255) unique,
    encrypted_password varchar(255),
    email_confirmed_at timestamptz,
    invited_at timestamptz,
    confirmation_token varchar(255),
    confirmation_sent_at timestamptz,
    recovery_token varchar(255),
    recovery_sent_at timestamptz,
    last_sign_in_at timestamptz,
    raw_app_meta_data jsonb default '{}'::jsonb,
    raw_user_meta_data jsonb default '{}'::jsonb,
    is_super_admin boolean,
    created_at timestamptz default now(),
    updated_at timestamptz default now(),
    phone text unique,
    phone_confirmed_at timestamptz,
    banned_until timestamptz,
    deleted_at timestamptz,
    is_sso_user boolean not null default false,
    is_anonymous boolean not null default false
);
comment on table auth.users is 'arti-compat: the GoTrue users table (subset of columns), embedded mode only.';

-- Claim readers, as Supabase defines them: request.jwt.claims (PostgREST >= 9) with the legacy
-- per-claim GUCs request.jwt.claim.<name> as a fallback.
create or replace function auth.uid() returns uuid
language sql stable
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
$$;
comment on function auth.uid() is 'The user id (sub claim) of the current request, or null.';

create or replace function auth.role() returns text
language sql stable
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim.role', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
$$;
comment on function auth.role() is 'The role claim of the current request, or null.';

create or replace function auth.email() returns text
language sql stable
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim.email', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
    )::text
$$;
comment on function auth.email() is 'The email claim of the current request, or null.';

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
$$;
comment on function auth.jwt() is 'All claims of the current request as jsonb, or null.';

grant execute on function auth.uid(), auth.role(), auth.email(), auth.jwt()
to anon, authenticated, service_role;
grant all on auth.users to service_role;

-- Supabase's default privileges on schema public: the API roles get table privileges and RLS
-- decides what they see.
grant usage on schema public to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
grant all on sequences to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
grant all on functions to anon, authenticated, service_role;

-- Realtime publishes changes of the tables added to this publication.
do $publication$
begin
    if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
        create publication supabase_realtime;
    end if;
end
$publication$;

-- Search path and exposed schemas as on Supabase (pgrst.db_schemas is read by the security advisor).
do $database$
begin
    execute format(
        'alter database %I set search_path = "$user", public, extensions', current_database()
    );
    execute format(
        'alter database %I set pgrst.db_schemas = %L', current_database(), 'public, graphql_public'
    );
end
$database$;
