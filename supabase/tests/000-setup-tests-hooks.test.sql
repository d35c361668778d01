-- =============================================================================================
-- pgTAP helpers for the other test files (in the spirit of supabase-test-helpers), installed in
-- schema `tests` of the test database only. Every later file runs inside begin ... rollback.
-- =============================================================================================
begin;
select plan(1);

create schema if not exists tests;
grant usage on schema tests to anon, authenticated, service_role;

create or replace function tests.create_supabase_user(
    identifier text, email text default null, app_metadata jsonb default '{}'::jsonb
) returns uuid
language plpgsql security definer set search_path = ''
as $$
declare
    new_id uuid := extensions.gen_random_uuid();
begin
    insert into auth.users (id, email, raw_user_meta_data, raw_app_meta_data, email_confirmed_at)
    values (
        new_id,
        coalesce(email, identifier || '@example.test'),
        jsonb_build_object('test_identifier', identifier, 'full_name', identifier),
        jsonb_build_object('provider', 'email') || app_metadata,
        now()
    );
    return new_id;
end
$$;

create or replace function tests.get_supabase_uid(identifier text) returns uuid
language sql stable security definer set search_path = ''
as $$
    select u.id from auth.users as u where u.raw_user_meta_data ->> 'test_identifier' = identifier
$$;

create or replace function tests.get_supabase_user(identifier text) returns jsonb
language sql stable security definer set search_path = ''
as $$
    select jsonb_build_object(
        'id', u.id, 'email', u.email, 'app_metadata', u.raw_app_meta_data,
        'user_metadata', u.raw_user_meta_data
    )
    from auth.users as u where u.raw_user_meta_data ->> 'test_identifier' = identifier
$$;

-- Not security definer: `role` cannot be set inside a security definer function.
create or replace function tests.authenticate_as(identifier text) returns void
language plpgsql set search_path = ''
as $$
declare
    found jsonb := tests.get_supabase_user(identifier);
begin
    if found is null then
        raise exception 'no test user %', identifier using errcode = 'P0002';
    end if;
    perform set_config('role', 'authenticated', true);
    perform set_config('request.jwt.claims', jsonb_build_object(
        'sub', found ->> 'id', 'role', 'authenticated', 'aud', 'authenticated', 'email', found ->> 'email',
        'app_metadata', found -> 'app_metadata', 'user_metadata', found -> 'user_metadata'
    )::text, true);
end
$$;

create or replace function tests.authenticate_as_service_role() returns void
language plpgsql set search_path = ''
as $$
begin
    perform set_config('role', 'service_role', true);
    perform set_config('request.jwt.claims', '{"role": "service_role"}', true);
end
$$;

create or replace function tests.clear_authentication() returns void
language plpgsql set search_path = ''
as $$
begin
    perform set_config('role', 'anon', true);
    perform set_config('request.jwt.claims', '{"role": "anon"}', true);
end
$$;

grant execute on all functions in schema tests to anon, authenticated, service_role;

select has_function('tests', 'authenticate_as', array['text'], 'test helpers installed');
select * from finish();
commit;
