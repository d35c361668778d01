-- Private helpers sync_plan_providers / sync_plan: the daily pass planned against the providers' quotas, per provider
-- (what `arti quota` and the health check report) and per account (what private.enqueue_due_syncs queues, with
-- `only_new`: accounts without a pending sync).
--   * Accounts in order (next_sync_at, connection date, id), per provider. A blocked provider, or account, waits
--     for its block's end. Of the rest, as many as every daily budget allows fit (per-account cost, and per-batch
--     cost for each group of batch_size); the others are deferred to the reset of the budget that stopped them.
--   * The pass lasts as long as the slowest provider needs at its allowed rate (calls / (limit - 1) per
--     window + lateness, for every app-wide rolling window). Every provider's accounts are spread evenly over that
--     time, so the binding provider runs at its rate and the others keep pace instead of crowding it out.
--   * Accounts of a provider that batches are grouped batch_size at a time, in order (batch_no).
create or replace function private.sync_plan_providers(at timestamptz default null, only_new boolean default false)
returns table (
    provider public.provider,
    due bigint,
    blocked bigint,
    fit bigint,
    batch_size integer,
    deferred_until timestamptz,
    deferred_reason text,
    pass_seconds double precision
)
language plpgsql stable set search_path = ''
as $$
declare
    plan_at timestamptz := coalesce(sync_plan_providers.at, now());
    target record;
    quota record;
    used numeric;
    within bigint;
    provider_state private.provider_quota_state;
begin
    for target in
        select
            a.provider as name,
            count(*) filter (where b.account_id is null) as due,
            count(*) filter (where b.account_id is not null) as blocked,
            coalesce(max(c.batch_size), 1) as size
        from public.connected_accounts as a
        left join private.provider_sync_costs as c on a.provider = c.provider
        left join private.account_quota_blocks as b on a.id = b.account_id and b.blocked_until > plan_at
        where
            a.status = 'active' and (a.next_sync_at is null or a.next_sync_at <= plan_at)
            and (not sync_plan_providers.only_new or not private.sync_pending(a.id))
        group by a.provider
    loop
        provider := target.name;
        due := target.due;
        blocked := target.blocked;
        batch_size := target.size;
        fit := target.due;
        deferred_until := null;
        deferred_reason := null;
        select s.* into provider_state from private.provider_quota_state as s where s.provider = target.name;
        if provider_state.blocked_until > plan_at then
            fit := 0;
            deferred_until := provider_state.blocked_until;
            deferred_reason := provider_state.blocked_reason;
        else
            for quota in
                select q.* from private.provider_quotas as q
                where
                    q.provider = target.name and q.applies_to = 'app' and q.resets = 'daily'
                    and q.quota_limit is not null
                order by q.scope
            loop
                -- What is spent already counts only if `at` falls in the current period.
                select coalesce(sum(u.used), 0) into used from private.provider_quota_usage as u
                where
                    u.provider = target.name and u.scope = quota.scope
                    and u.period_start = private.quota_period_start(quota.resets, quota.reset_time_zone, plan_at)
                    and u.period_start = private.quota_period_start(quota.resets, quota.reset_time_zone, now());
                within := private.accounts_within(
                    quota.quota_limit - used, quota.per_account, quota.per_batch, target.size
                );
                if within is not null and within < fit then
                    fit := within;
                    deferred_until := private.quota_next_reset(quota.resets, quota.reset_time_zone, plan_at);
                    deferred_reason := format(
                        '%s %s: %s %s a day, %s spent; %s of %s accounts fit, the rest waits for the reset',
                        target.name, quota.scope, quota.quota_limit, quota.unit, used, within, target.due);
                end if;
            end loop;
        end if;
        -- The time the calls take at the pace every app-wide rolling window allows (GCRA with its lateness margin).
        select coalesce(max(
            (fit * q.per_account + ceil(fit::numeric / target.size) * q.per_batch)
            * (q.window_seconds + q.lateness_seconds) / greatest(q.quota_limit - 1, 1)
        ), 0) into pass_seconds
        from private.provider_quotas as q
        where
            q.provider = target.name and q.applies_to = 'app' and q.resets = 'rolling' and q.quota_limit is not null;
        return next;
    end loop;
end
$$;
comment on function private.sync_plan_providers(timestamptz, boolean) is
'Per provider, the daily pass at `at` (default now): accounts due (blocked ones apart), how many fit every daily '
'budget and until when and why the others wait, the batch size, and the seconds the fitting ones take at the pace '
'of the provider''s rolling windows. only_new: leave out accounts whose sync is already pending.';
revoke all on function private.sync_plan_providers(timestamptz, boolean) from public, anon, authenticated;

create or replace function private.sync_plan(at timestamptz default null, only_new boolean default false)
returns table (
    account_id uuid,
    org_id uuid,
    provider public.provider,
    place bigint,
    fits boolean,
    batch_no bigint,
    scheduled_at timestamptz,
    deferred_until timestamptz,
    deferred_reason text
)
language sql stable set search_path = ''
as $$
    with plan_at as (
        select coalesce(sync_plan.at, now()) as t
    ),

    providers as materialized (
        select p.* from plan_at, private.sync_plan_providers(plan_at.t, sync_plan.only_new) as p
    ),

    pass as (
        select coalesce(max(p.pass_seconds), 0) as seconds from providers as p
    ),

    candidates as (
        select
            a.id, a.org_id, a.provider, b.blocked_until, b.reason as blocked_reason,
            row_number() over (
                partition by a.provider, b.account_id is not null order by a.next_sync_at nulls first, a.created_at, a.id
            ) - 1 as pos
        from plan_at cross join public.connected_accounts as a
        left join private.account_quota_blocks as b on a.id = b.account_id and b.blocked_until > plan_at.t
        where
            a.status = 'active' and (a.next_sync_at is null or a.next_sync_at <= plan_at.t)
            and (not sync_plan.only_new or not private.sync_pending(a.id))
    )

    select
        c.id,
        c.org_id,
        c.provider,
        c.pos,
        c.blocked_until is null and c.pos < p.fit,
        case when c.blocked_until is null and c.pos < p.fit and p.batch_size > 1 then c.pos / p.batch_size end,
        case
            when c.blocked_until is not null then c.blocked_until
            when c.pos >= p.fit then p.deferred_until
            when pass.seconds > 0 then plan_at.t + make_interval(secs => pass.seconds * c.pos / greatest(p.fit, 1))
        end,
        case
            when c.blocked_until is not null then c.blocked_until
            when c.pos >= p.fit then p.deferred_until
        end,
        case
            when c.blocked_until is not null then c.blocked_reason
            when c.pos >= p.fit then p.deferred_reason
        end
    from candidates as c
    cross join plan_at
    cross join pass
    left join providers as p on c.provider = p.provider
    order by c.provider, c.blocked_until nulls first, c.pos
$$;
comment on function private.sync_plan(timestamptz, boolean) is
'The daily pass planned at `at` (default now) against the provider quotas (private.sync_plan_providers): per '
'account, its place, whether it fits the daily budgets, its batch, when it should start (every provider spread over '
'the time the slowest needs at its allowed rate) or until when it waits and why. only_new: leave out accounts whose '
'sync is already pending.';
revoke all on function private.sync_plan(timestamptz, boolean) from public, anon, authenticated;

create or replace function private.sync_pending(account uuid)
returns boolean
language sql stable set search_path = ''
as $$
    select exists (
        select 1 from procrastinate.procrastinate_jobs as j
        where j.queueing_lock = 'sync:' || sync_pending.account::text and j.status = 'todo'
    ) or exists (
        select 1 from procrastinate.procrastinate_jobs as j
        inner join public.sync_runs as r on r.id = (j.args ->> 'sync_run_id')::uuid
        where
            j.lock = 'account:' || sync_pending.account::text and j.status = 'doing'
            and r.status in ('queued', 'running')
    )
$$;
comment on function private.sync_pending(uuid) is
'True while a sync of the account waits in the queue, or runs and has not finished (as private.enqueue_sync '
'decides).';
revoke all on function private.sync_pending(uuid) from public, anon, authenticated;
