-- =============================================================================================
-- Migration: a job that is only being closed no longer counts as work in progress
--   * A task writes its result (a sync run succeeded or failed, a webhook delivery delivered,
--     failed or dead) from inside the job, and Procrastinate marks the job finished only after
--     the task returns. In between, the job is still 'doing' although its work is over.
--   * private.enqueue_sync() took such a job for a pending sync and handed back the finished
--     run's id, queueing nothing: a schedule tick, a manual sync or a re-enqueue arriving in that
--     window was lost. Now a running job counts only while its run is queued or running.
--   * private.requeue_webhook_delivery() (replay: RPC and `arti webhooks replay`) refused with
--     23505 "an attempt is in progress" in the same window. Now it refuses only while the
--     delivery is still pending.
--   * The new job defers without conflict: a queueing lock (sync:<account>, webhook:<delivery>)
--     covers waiting jobs only, and the job lock of the same name keeps the new job from starting
--     before the finishing one is done.
--   * A sync retry sets its run back to queued before the job is re-scheduled, so a sync waiting
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

create or replace function private.requeue_webhook_delivery(target_delivery uuid) returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
    delivery public.webhook_deliveries;
    endpoint_active boolean;
    job_id bigint;
    horizon double precision := private.webhook_setting('webhooks.retry_horizon_seconds', '86400')::double precision;
begin
    select d.* into delivery from public.webhook_deliveries as d where d.id = target_delivery for update;
    if delivery.id is null then
        raise exception 'webhook delivery % not found', target_delivery using errcode = 'P0002';
    end if;
    select e.active into endpoint_active from public.webhook_endpoints as e where e.id = delivery.endpoint_id;
    if not endpoint_active then
        raise exception 'the endpoint of this delivery is disabled; enable it before replaying'
        using errcode = '22023';
    end if;
    -- A running job is an attempt in progress only while the delivery is pending: once the
    -- attempt has recorded delivered, failed or dead, its job is just being closed.
    if delivery.status = 'pending' and exists (
        select 1 from procrastinate.procrastinate_jobs as j
        where j.lock = 'webhook:' || delivery.id::text and j.status = 'doing'
    ) then
        raise exception 'an attempt of this delivery is in progress; replay it when it has finished'
        using errcode = '23505';
    end if;
    update public.webhook_deliveries as d
    set
        status = 'pending', next_attempt_at = now(), delivered_at = null,
        retry_until = now() + make_interval(secs => horizon)
    where d.id = delivery.id;
    -- A job already waiting (e.g. for its next retry) is brought forward instead of duplicated.
    update procrastinate.procrastinate_jobs as j set scheduled_at = now()
    where j.queueing_lock = 'webhook:' || delivery.id::text and j.status = 'todo'
    returning j.id into job_id;
    if job_id is null then
        perform private.defer_webhook_deliveries(array[delivery.id]);
    end if;
    return jsonb_build_object(
        'delivery_id', delivery.id, 'event_id', delivery.event_id, 'status', 'pending',
        'previous_status', delivery.status, 'attempts', delivery.attempts
    );
end
$$;
comment on function private.requeue_webhook_delivery(uuid) is
'Queues a new attempt of a delivery (same event id), whatever its status; the retry horizon restarts now. '
'Errors: P0002 unknown, 22023 endpoint disabled, 23505 an attempt is running (its delivery still pending).';
