-- =============================================================================================
-- Migration: a sync run counts as pending only while it is unfinished
--   * private.enqueue_sync() handed back the id of a run that had already finished. The sync
--     task marks its run succeeded or failed from inside the job, and Procrastinate marks the
--     job finished only after the task returns. In between, the job is still 'doing' although
--     its run is over, and a request arriving then (a schedule tick, a manual sync, a re-enqueue
--     after the cooldown) got the finished run's id and no new sync.
--   * Now a job that is running counts only while its run is queued or running. The new job
--     defers without conflict: the queueing lock (sync:<account>) covers waiting jobs only, and
--     the job lock (account:<account>) keeps it from starting before the finishing one is done.
--   * A retry sets its run back to queued before the job is re-scheduled, so a job waiting
--     for its retry still counts as pending.
-- =============================================================================================

create or replace function private.enqueue_sync(
    target_account uuid, run_trigger public.sync_trigger, requested_by uuid default null
) returns uuid
language plpgsql volatile security definer set search_path = ''
as $$
declare
    account public.connected_accounts;
    run_id uuid;
begin
    select * into account from public.connected_accounts as a where a.id = target_account;
    if account.id is null then
        raise exception 'connected account not found' using errcode = 'P0002';
    end if;
    -- The queue is the source of truth: a run is pending while its job waits, or while its job
    -- runs and the run itself has not finished (a finished run's job is only being closed).
    select (j.args ->> 'sync_run_id')::uuid into run_id
    from procrastinate.procrastinate_jobs as j
    left join public.sync_runs as r on r.id = (j.args ->> 'sync_run_id')::uuid
    where
        (j.queueing_lock = 'sync:' || account.id::text and j.status = 'todo')
        or (
            j.lock = 'account:' || account.id::text
            and j.status = 'doing'
            and r.status in ('queued', 'running')
        )
    order by j.id desc
    limit 1;
    if run_id is not null then
        return run_id;
    end if;
    -- Runs left queued or running without a job (their job was lost) are closed, not resumed.
    update public.sync_runs as r set status = 'failed', finished_at = now(), error = 'superseded: its job was lost'
    where r.account_id = target_account and r.status in ('queued', 'running');
    insert into public.sync_runs (org_id, account_id, trigger, requested_by)
    values (account.org_id, account.id, run_trigger, requested_by)
    returning id into run_id;
    perform procrastinate.procrastinate_defer_jobs_v1(array[row(
        'sync', 'sync_account', 0, 'account:' || account.id::text, 'sync:' || account.id::text,
        jsonb_build_object('sync_run_id', run_id), null
    )::procrastinate.procrastinate_job_to_defer_v1]);
    return run_id;
end
$$;
comment on function private.enqueue_sync(uuid, public.sync_trigger, uuid) is
'Queues a sync of one account (sync_runs row + Procrastinate job with queueing lock sync:<id>); returns the run id, '
'or the pending run''s id when one is already waiting, or running and not yet finished.';
