-- Run once by the supabase/postgres image when it initialises an empty data volume (mounted into
-- /docker-entrypoint-initdb.d/init-scripts/ by docker-compose.yml). It is a psql script, not plain SQL
-- (hence outside sqlfluff's paths): it reads the container's PGPASSWORD, which compose sets from
-- POSTGRES_PASSWORD in .env.
--
-- The image creates the service roles without passwords; GoTrue, PostgREST, Storage, Realtime and
-- postgres-meta log in as these roles with that password.
\set pgpass `echo "$PGPASSWORD"`

alter role supabase_admin with password :'pgpass';
alter role authenticator with password :'pgpass';
alter role supabase_auth_admin with password :'pgpass';
alter role supabase_storage_admin with password :'pgpass';
