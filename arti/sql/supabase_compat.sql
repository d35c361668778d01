-- ============================================================================================
-- Supabase compatibility bootstrap (embedded mode only)
--
-- A Supabase database ships roles, the auth schema and a few defaults that application
-- migrations and RLS policies rely on. This file recreates the small part of that surface the
-- project uses, from Supabase's documented behaviour, so that RLS and RPCs behave here exactly as
-- they do behind PostgREST. It is applied only where the database has no `auth` schema of its
-- own (never on a real Supabase database). Everything here is idempotent and brings an older
-- bootstrap up to date; what may run only once (Supabase's default privileges, which a migration
-- then narrows) is in supabase_compat_once.sql, applied when the auth schema is first created.
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
    -- Owner of Supabase's own schemas (auth, graphql_public): `supabase db reset` keeps the schemas it
    -- owns and drops the others. No login and no superuser here: ownership is all the project needs.
    if not exists (select 1 from pg_roles where rolname = 'supabase_admin') then
        create role supabase_admin nologin noinherit;
    end if;
    grant anon, authenticated, service_role to authenticator;
    grant anon, authenticated, service_role to postgres;
    grant supabase_admin to postgres;
end
$roles$;

-- Statement timeouts of the API roles, as on Supabase (PostgREST applies the impersonated role's settings).
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';

-- Schemas: extensions live outside public so PostgREST never exposes their objects.
create schema if not exists extensions;
create schema if not exists auth authorization supabase_admin;
create schema if not exists graphql_public authorization supabase_admin;
alter schema auth owner to supabase_admin;
alter schema graphql_public owner to supabase_admin;
comment on schema auth is 'arti-compat: stand-in for the GoTrue auth schema (embedded mode only)';
comment on schema extensions is 'Extensions live here, never in public (as on Supabase).';

grant usage on schema extensions to anon, authenticated, service_role;
grant usage on schema auth to anon, authenticated, service_role;
grant usage on schema graphql_public to anon, authenticated, service_role;

create extension if not exists pgcrypto with schema extensions;
create extension if not exists "uuid-ossp" with schema extensions;
-- Preloaded by the embedded cluster (arti.localdb); `supabase inspect db` reads it.
create extension if not exists pg_stat_statements with schema extensions;

-- auth.users exactly as GoTrue's migrations leave it: its 35 columns, types, defaults and indexes
-- (supabase/auth migrations; `\d auth.users` on a Supabase project). GoTrue writes every row, so
-- there are no other defaults: whoever inserts here (seed.sql, `arti users create`, the tests) writes
-- a complete GoTrue row.
create table if not exists auth.users (
    instance_id uuid,
    id uuid not null primary key,
    aud varchar(255),
    role varchar(255),
    email varchar(255),
    encrypted_password varchar(255),
    email_confirmed_at timestamptz,
    invited_at timestamptz,
    confirmation_token varchar(255),
    confirmation_sent_at timestamptz,
    recovery_token varchar(255),
    recovery_sent_at timestamptz,
    email_change_token_new varchar(255),
    email_change varchar(255),
    email_change_sent_at timestamptz,
    last_sign_in_at timestamptz,
    raw_app_meta_data jsonb,
    raw_user_meta_data jsonb,
    is_super_admin boolean,
    created_at timestamptz,
    updated_at timestamptz,
    phone text unique default null::varchar,
    phone_confirmed_at timestamptz,
    phone_change text default ''::varchar,
    phone_change_token varchar(255) default '',
    phone_change_sent_at timestamptz,
    confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
    email_change_token_current varchar(255) default '',
    email_change_confirm_status smallint default 0 check (email_change_confirm_status between 0 and 2),
    banned_until timestamptz,
    reauthentication_token varchar(255) default '',
    reauthentication_sent_at timestamptz,
    is_sso_user boolean not null default false,
    deleted_at timestamptz,
    is_anonymous boolean not null default false
);
comment on table auth.users is 'arti-compat: GoTrue''s users table (embedded mode only). Auth: Stores user login data.';

-- An older bootstrap created a subset with defaults of its own: bring it to GoTrue's shape.
alter table auth.users
add column if not exists email_change_token_new varchar(255),
add column if not exists email_change varchar(255),
add column if not exists email_change_sent_at timestamptz,
add column if not exists phone_change text default ''::varchar,
add column if not exists phone_change_token varchar(255) default '',
add column if not exists phone_change_sent_at timestamptz,
add column if not exists confirmed_at timestamptz
generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
add column if not exists email_change_token_current varchar(255) default '',
add column if not exists email_change_confirm_status smallint default 0
check (email_change_confirm_status between 0 and 2),
add column if not exists reauthentication_token varchar(255) default '',
add column if not exists reauthentication_sent_at timestamptz;
alter table auth.users alter column id drop default;
alter table auth.users alter column aud drop default;
alter table auth.users alter column role drop default;
alter table auth.users alter column raw_app_meta_data drop default;
alter table auth.users alter column raw_user_meta_data drop default;
alter table auth.users alter column created_at drop default;
alter table auth.users alter column updated_at drop default;
alter table auth.users drop constraint if exists users_email_key;

create unique index if not exists users_email_partial_key on auth.users (email) where (is_sso_user = false);
create index if not exists users_instance_id_email_idx on auth.users (instance_id, lower(email::text));
create index if not exists users_instance_id_idx on auth.users (instance_id);
create index if not exists users_is_anonymous_idx on auth.users (is_anonymous);
create unique index if not exists confirmation_token_idx on auth.users (confirmation_token)
where (confirmation_token::text !~ '^[0-9 ]*$');
create unique index if not exists recovery_token_idx on auth.users (recovery_token)
where (recovery_token::text !~ '^[0-9 ]*$');
create unique index if not exists email_change_token_current_idx on auth.users (email_change_token_current)
where (email_change_token_current::text !~ '^[0-9 ]*$');
create unique index if not exists email_change_token_new_idx on auth.users (email_change_token_new)
where (email_change_token_new::text !~ '^[0-9 ]*$');
create unique index if not exists reauthentication_token_idx on auth.users (reauthentication_token)
where (reauthentication_token::text !~ '^[0-9 ]*$');

-- auth.identities as GoTrue keeps it: one row per sign-in method of a user (email included); GoTrue's
-- password sign-in looks the user up through it.
create table if not exists auth.identities (
    provider_id text not null,
    user_id uuid not null references auth.users (id) on delete cascade,
    identity_data jsonb not null,
    provider text not null,
    last_sign_in_at timestamptz,
    created_at timestamptz,
    updated_at timestamptz,
    email text generated always as (lower(identity_data ->> 'email')) stored,
    id uuid not null default extensions.gen_random_uuid() primary key,
    constraint identities_provider_id_provider_unique unique (provider_id, provider)
);
comment on table auth.identities is
'arti-compat: GoTrue''s identities table (embedded mode only). Auth: Stores identities associated to a user.';
create index if not exists identities_user_id_idx on auth.identities (user_id);
create index if not exists identities_email_idx on auth.identities (email text_pattern_ops);

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
grant all on auth.users, auth.identities to service_role;

grant usage on schema public to anon, authenticated, service_role;

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
