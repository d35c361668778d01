-- =============================================================================================
-- Migration: every failed job attempt is recorded with its error
--   * Procrastinate keeps a job's status but not why it failed; only the worker's log says, and
--     logs scroll away. Sync runs and webhook deliveries record their own errors, but the insights
--     and maintenance jobs recorded nothing an operator could look up afterwards.
--   * private.job_failures: one row per failed attempt of any job, written by the worker
--     (jobs/failures.py, a Procrastinate worker middleware): the job, its task and arguments,
--     which attempt it was, whether the task's retry strategy retries it, and the error.
--     No foreign key to procrastinate_jobs: the record outlives the job if the job is deleted.
--   * `arti jobs --failed` lists the latest ones. Not exposed through the API.
--   * private.prune_job_failures() keeps 30 days, run daily by pg_cron (`arti-prune-job-failures`).
-- =============================================================================================

create table private.job_failures (
    id bigint generated always as identity primary key,
    job_id bigint not null,
    queue_name text not null,
    task_name text not null,
    task_args jsonb not null default '{}'::jsonb,
    attempt integer not null check (attempt >= 1),
    will_retry boolean not null,
    error_type text not null,
    error_message text not null,
    worker text,
    failed_at timestamptz not null default now()
);
comment on table private.job_failures is
'One row per failed attempt of a Procrastinate job, written by the worker; kept 30 days (prune_job_failures).';
comment on column private.job_failures.id is 'Identity of the record.';
comment on column private.job_failures.job_id is
'procrastinate.procrastinate_jobs.id of the job (no FK: the record is kept after the job).';
comment on column private.job_failures.queue_name is 'Queue the job ran in (sync, insights, webhooks, maintenance).';
comment on column private.job_failures.task_name is 'Task that failed, e.g. refresh_insights.';
comment on column private.job_failures.task_args is 'The task''s keyword arguments, as deferred.';
comment on column private.job_failures.attempt is
'Which attempt failed: 1 for the first run, 2 for the first retry, and so on.';
comment on column private.job_failures.will_retry is
'Whether the task''s retry strategy schedules another attempt; false means the job gave up here.';
comment on column private.job_failures.error_type is
'Exception class, with its module (e.g. psycopg.errors.InvalidTextRepresentation).';
comment on column private.job_failures.error_message is 'Exception message, at most 2000 characters.';
comment on column private.job_failures.worker is
'The worker that ran the attempt: host:pid, and its name in parentheses when it was given one.';
comment on column private.job_failures.failed_at is 'When the attempt failed.';

create index job_failures_failed_at_idx on private.job_failures (failed_at desc);
comment on index private.job_failures_failed_at_idx is 'Latest failures first (arti jobs --failed, pruning).';
create index job_failures_job_id_idx on private.job_failures (job_id);
comment on index private.job_failures_job_id_idx is 'Every failed attempt of one job.';

revoke all on private.job_failures from public, anon, authenticated;

create function private.prune_job_failures(keep interval default interval '30 days') returns integer
language plpgsql volatile set search_path = ''
as $$
declare
    removed integer;
begin
    delete from private.job_failures as f where f.failed_at < now() - keep;
    get diagnostics removed = row_count;
    return removed;
end
$$;
comment on function private.prune_job_failures(interval) is
'Deletes job failure records older than keep (30 days by default). Returns how many. Run daily by pg_cron.';
revoke execute on function private.prune_job_failures(interval) from public;

select cron.schedule('arti-prune-job-failures', '17 3 * * *', 'select private.prune_job_failures()');
