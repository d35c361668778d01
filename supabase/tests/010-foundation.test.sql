-- Foundation: schemas, extensions and the auth functions as a signed-in user sees them.
begin;
\ir helpers/supabase_test_helpers.psql
select plan(8);

select has_schema('private', 'schema private exists');
select has_schema('extensions', 'schema extensions exists');
select has_extension('extensions', 'vector', 'pgvector lives in extensions');
select has_extension('pg_cron', 'pg_cron is installed');

select tests.create_supabase_user('alice');
select tests.authenticate_as('alice');
select is(auth.uid(), tests.get_supabase_uid('alice'), 'auth.uid() is the signed-in user');
select is(auth.role(), 'authenticated', 'auth.role() is authenticated');
select is(current_user::text, 'authenticated', 'the session runs as authenticated');
select throws_ok(
    'select count(*) from supabase_migrations.schema_migrations', '42501', null,
    'the migration history is not readable by users'
);

select * from finish();
rollback;
