-- Private function enqueue_due_syncs: what pg_cron runs daily (arti-daily-sync). Plans the due accounts against the
-- provider quotas (private.sync_plan) and queues them in one statement: one sync_runs row and one Procrastinate job
-- each (queueing lock sync:<account>, lock account:<account>, priority 10), scheduled when the plan says; batches
-- for the providers that fetch public data by the batch; runs that do not fit wait for the reset with the reason in
-- sync_runs.deferred_until / deferred_reason. Jobs are inserted in the order they become due, which is the order
-- Procrastinate fetches them in. Accounts whose sync is already pending keep it.
create or replace function private.enqueue_due_syncs()
returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
    planned integer;
    already integer;
begin
    perform pg_advisory_xact_lock(hashtext('arti.enqueue_due_syncs'));
    select count(*) into already
    from public.connected_accounts as a
    where a.status = 'active' and (a.next_sync_at is null or a.next_sync_at <= now()) and private.sync_pending(a.id);

    with plan as materialized (
        select p.*, a.external_id from private.sync_plan(now(), true) as p
        inner join public.connected_accounts as a on p.account_id = a.id
    ),

    batch_ids as materialized (
        select p.provider, p.batch_no, extensions.gen_random_uuid() as id
        from plan as p where p.batch_no is not null
        group by p.provider, p.batch_no
    ),

    new_batches as (
        insert into private.sync_batches (id, provider) select b.id, b.provider from batch_ids as b
    ),

    new_items as (
        insert into private.sync_batch_items (batch_id, account_id, external_id)
        select b.id, p.account_id, p.external_id
        from plan as p inner join batch_ids as b on p.provider = b.provider and p.batch_no = b.batch_no
    ),

    lost as (
        -- Runs left queued or running without a job (their job was lost) are closed, not resumed.
        update public.sync_runs as r set status = 'failed', finished_at = now(), error = 'superseded: its job was lost'
        where r.account_id in (select p.account_id from plan as p) and r.status in ('queued', 'running')
    ),

    runs as (
        insert into public.sync_runs (org_id, account_id, trigger, deferred_until, deferred_reason)
        select p.org_id, p.account_id, 'schedule', p.deferred_until, p.deferred_reason from plan as p
        returning id, account_id
    )

    select count(*) into planned
    from (
        select procrastinate.procrastinate_defer_jobs_v1(array(
            select row(
                'sync', 'sync_account', 10, 'account:' || r.account_id::text, 'sync:' || r.account_id::text,
                jsonb_build_object('sync_run_id', r.id), p.scheduled_at
            )::procrastinate.procrastinate_job_to_defer_v1
            from runs as r inner join plan as p on r.account_id = p.account_id
            order by coalesce(p.scheduled_at, now()), p.provider, p.place
        )) as ids
    ) as deferred
    cross join lateral unnest(deferred.ids) as job (id);
    return planned + already;
end
$$;
comment on function private.enqueue_due_syncs() is
'Run by pg_cron (arti-daily-sync): plans every active, due account without a pending sync against the provider '
'quotas (private.sync_plan) and queues them, scheduled as planned, in batches where a provider allows, deferred '
'with the reason when they do not fit. Returns the number of due accounts (new runs plus those already pending).';
revoke all on function private.enqueue_due_syncs() from public, anon, authenticated;
