-- Private function defer_sync_run: a sync the quotas stop before it is done (a block the provider announced, a
-- budget without room) is not failed: its run goes back to queued with the reason, and a job for it is scheduled for
-- when it may go on. The job that called this then ends normally.
create or replace function private.defer_sync_run(run uuid, until timestamptz, reason text)
returns boolean
language plpgsql volatile set search_path = ''
as $$
declare
    account uuid;
begin
    update public.sync_runs as r
    set status = 'queued', deferred_until = until, deferred_reason = left(reason, 500), error = null
    where r.id = run and r.status in ('queued', 'running')
    returning r.account_id into account;
    if account is null then
        return false;
    end if;
    begin
        perform procrastinate.procrastinate_defer_jobs_v1(array[row(
            'sync', 'sync_account', 10, 'account:' || account::text, 'sync:' || account::text,
            jsonb_build_object('sync_run_id', run), until
        )::procrastinate.procrastinate_job_to_defer_v1]);
    exception when unique_violation then
        -- Another sync of the account already waits in the queue: it will do this one's work.
        update public.sync_runs as r
        set status = 'failed', finished_at = now(), error = 'superseded: another sync of the account is queued'
        where r.id = run;
    end;
    return true;
end
$$;
comment on function private.defer_sync_run(uuid, timestamptz, text) is
'Puts a running or queued sync back in the queue until `until`, with the reason in sync_runs.deferred_until / '
'deferred_reason (a Procrastinate job scheduled then). False when the run had already finished.';
revoke all on function private.defer_sync_run(uuid, timestamptz, text) from public, anon, authenticated;
