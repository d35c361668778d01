-- ============================================================================================
-- Supabase compatibility bootstrap, the part that runs once (when the auth schema is first created)
--
-- Supabase's default privileges on schema public: the API roles get table, sequence and function
-- privileges, and RLS decides what they see. The foundation migration then revokes EXECUTE on
-- functions from public, anon and authenticated. Granting them again on every `arti db migrate`
-- would silently undo that revoke for every function created afterwards, so this runs only once,
-- exactly like the platform's own setup of a Supabase database.
-- ============================================================================================

alter default privileges for role postgres in schema public
grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
grant all on sequences to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
grant all on functions to anon, authenticated, service_role;
