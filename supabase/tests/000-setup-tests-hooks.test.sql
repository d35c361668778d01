-- =============================================================================================
-- The pgTAP helpers every test file uses (tests.create_supabase_user, authenticate_as, ...; in the
-- spirit of supabase-test-helpers) live in helpers/supabase_test_helpers.psql. Each file includes them
-- right after `begin;` and rolls them back with everything else: nothing is committed, so running this
-- folder (`supabase test db`, pg_prove) against any database leaves no schema or function behind.
-- This file checks the helpers themselves.
-- =============================================================================================
begin;
\ir helpers/supabase_test_helpers.psql
select plan(6);

select has_function('tests', 'authenticate_as', array['text'], 'test helpers installed');

select tests.create_supabase_user('helper-check', 'helper-check@example.test');
select isnt(tests.get_supabase_uid('helper-check'), null, 'a test user is created in auth.users');

select tests.authenticate_as('helper-check');
select is(current_user::text, 'authenticated', 'authenticate_as switches to the authenticated role');
select is(auth.uid(), tests.get_supabase_uid('helper-check'), 'authenticate_as sets the JWT claims');

select tests.clear_authentication();
select is(current_user::text, 'anon', 'clear_authentication switches to anon');
select is(auth.uid(), null, 'anon has no user id');

select * from finish();
rollback;
