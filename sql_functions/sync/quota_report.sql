-- Private function quota_report: per provider and quota scope, what the daily pass at `at` (default: the next one
-- pg_cron runs) needs against what is allowed and what was spent today: what `arti quota` prints and what
-- /functions/v1/health shows, as information.
create or replace function private.quota_report(at timestamptz default null)
returns table (
    provider public.provider,
    scope text,
    unit text,
    quota_limit numeric,
    window_seconds integer,
    resets text,
    reset_time_zone text,
    applies_to text,
    plan_at timestamptz,
    next_reset_at timestamptz,
    used_today numeric,
    calls_today bigint,
    accounts bigint,
    fits bigint,
    deferred bigint,
    calls_needed numeric,
    units_needed numeric,
    pass_seconds numeric,
    blocked_until timestamptz,
    blocked_reason text,
    reported jsonb,
    source text
)
language sql stable set search_path = ''
as $$
    with run_at as (
        select coalesce(quota_report.at, private.next_daily_sync_at()) as t
    ),

    plan as (
        select p.provider, p.due + p.blocked as accounts, p.fit as fits
        from run_at, private.sync_plan_providers(run_at.t, false) as p
    ),

    needs as (
        select
            c.provider, coalesce(plan.accounts, 0) as accounts, coalesce(plan.fits, 0) as fits, c.batch_size,
            c.calls_per_account, c.calls_per_batch
        from private.provider_sync_costs as c left join plan on c.provider = plan.provider
    )

    select
        q.provider,
        q.scope,
        q.unit,
        q.quota_limit,
        q.window_seconds,
        q.resets,
        q.reset_time_zone,
        q.applies_to,
        run_at.t,
        private.quota_next_reset(q.resets, q.reset_time_zone, now()),
        coalesce(u.used, 0),
        coalesce(u.calls, 0),
        n.accounts,
        n.fits,
        n.accounts - n.fits,
        n.accounts * n.calls_per_account + ceil(n.accounts::numeric / greatest(n.batch_size, 1)) * n.calls_per_batch,
        n.accounts * q.per_account + ceil(n.accounts::numeric / greatest(n.batch_size, 1)) * q.per_batch,
        case
            when q.resets = 'rolling' and q.applies_to = 'app' and q.quota_limit is not null
                then round(
                    (n.fits * q.per_account + ceil(n.fits::numeric / greatest(n.batch_size, 1)) * q.per_batch)
                    * q.window_seconds / q.quota_limit, 1
                )
        end,
        case when s.blocked_until > now() then s.blocked_until end,
        case when s.blocked_until > now() then s.blocked_reason end,
        s.reported,
        q.source
    from private.provider_quotas as q
    cross join run_at
    inner join needs as n on q.provider = n.provider
    left join private.provider_quota_state as s on q.provider = s.provider
    left join private.provider_quota_usage as u
        on
            q.provider = u.provider and q.scope = u.scope
            and u.period_start = private.quota_period_start(q.resets, q.reset_time_zone, now())
$$;
comment on function private.quota_report(timestamptz) is
'Per provider and scope: the daily pass at `at` (default the next scheduled one): accounts due, how many fit the '
'daily budgets and how many wait for a reset, calls and units needed, the seconds the calls take at the allowed '
'rate (rolling windows: the quota floor), what was spent today, blocks in force and the usage last reported.';
revoke all on function private.quota_report(timestamptz) from public, anon, authenticated;

create or replace function private.quota_deferred_accounts(at timestamptz default null, max_rows integer default 100)
returns table (
    account_id uuid, org_id uuid, provider public.provider, external_id text, deferred_until timestamptz, reason text
)
language sql stable set search_path = ''
as $$
    select p.account_id, p.org_id, p.provider, a.external_id, p.deferred_until, p.deferred_reason
    from private.sync_plan(coalesce(quota_deferred_accounts.at, private.next_daily_sync_at()), false) as p
    inner join public.connected_accounts as a on p.account_id = a.id
    where not p.fits
    order by p.provider, p.place
    limit greatest(quota_deferred_accounts.max_rows, 0)
$$;
comment on function private.quota_deferred_accounts(timestamptz, integer) is
'The accounts the daily pass at `at` (default the next scheduled one) will not fit, with until when they wait and '
'why (at most max_rows).';
revoke all on function private.quota_deferred_accounts(timestamptz, integer) from public, anon, authenticated;

create or replace function private.next_daily_sync_at()
returns timestamptz
language plpgsql stable set search_path = ''
as $$
declare
    schedule text := coalesce(
        (select s.value from private.settings as s where s.key = 'sync.daily_schedule'), '0 2 * * *'
    );
    parts text[] := regexp_match(schedule, '^\s*([0-9]{1,2})\s+([0-9]{1,2})\s+\*\s+\*\s+\*\s*$');
    today timestamptz;
    candidate timestamptz;
begin
    if parts is null then
        return now() + interval '1 day';
    end if;
    today := date_trunc('day', now() at time zone 'UTC') at time zone 'UTC';
    candidate := today + make_interval(hours => parts[2]::integer, mins => parts[1]::integer);
    if candidate <= now() then
        candidate := candidate + interval '1 day';
    end if;
    return candidate;
end
$$;
comment on function private.next_daily_sync_at() is
'When pg_cron next runs the daily sync (sync.daily_schedule ''M H * * *'', UTC); a day from now for other forms.';
revoke all on function private.next_daily_sync_at() from public, anon, authenticated;

create or replace function private.prune_sync_batches()
returns integer
language plpgsql volatile set search_path = ''
as $$
declare
    pruned integer;
begin
    delete from private.sync_batches as b where b.created_at < now() - interval '2 days';
    get diagnostics pruned = row_count;
    delete from private.provider_quota_usage as u where u.period_start < now() - interval '35 days';
    delete from private.account_quota_blocks as b
    where b.blocked_until < now() - interval '2 days' or (b.blocked_until is null and b.reported_at < now() - interval '2 days');
    return pruned;
end
$$;
comment on function private.prune_sync_batches() is
'Run by pg_cron daily (arti-prune-sync-batches): deletes batches older than two days, quota usage older than 35 '
'days and account blocks two days past. Returns the batches deleted.';
revoke all on function private.prune_sync_batches() from public, anon, authenticated;
