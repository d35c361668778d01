-- Private helpers begin_sync_quota / take_provider_call: the gate every sync and every provider call passes, shared
-- by all workers. Both answer jsonb: {"deferred_until", "reason", "retry"} when the call must wait for a block or a
-- budget's reset (the sync is then deferred, not failed), or {"wait": seconds} (pacing: sleep, then call).
create or replace function private.begin_sync_quota(target public.provider, account uuid)
returns jsonb
language plpgsql volatile set search_path = ''
as $$
declare
    now_ts timestamptz := clock_timestamp();
    state private.provider_quota_state;
    blocked private.account_quota_blocks;
    quota record;
    spent numeric;
begin
    select s.* into state from private.provider_quota_state as s where s.provider = target;
    if state.blocked_until > now_ts then
        return jsonb_build_object('deferred_until', state.blocked_until, 'reason', state.blocked_reason,
            'retry', true);
    end if;
    select b.* into blocked from private.account_quota_blocks as b where b.account_id = account;
    if blocked.blocked_until > now_ts then
        return jsonb_build_object('deferred_until', blocked.blocked_until, 'reason', blocked.reason, 'retry', true);
    end if;
    -- Reserve this account's per-account cost in every daily budget, all or nothing, so it never stops half-way.
    for quota in
        select q.*, private.quota_period_start(q.resets, q.reset_time_zone, now_ts) as period
        from private.provider_quotas as q
        where
            q.provider = target and q.applies_to = 'app' and q.resets = 'daily' and q.quota_limit is not null
            and q.per_account > 0
        order by q.scope
        for update of q
    loop
        insert into private.provider_quota_usage (provider, scope, period_start)
        values (target, quota.scope, quota.period) on conflict do nothing;
        select u.used into spent from private.provider_quota_usage as u
        where u.provider = target and u.scope = quota.scope and u.period_start = quota.period
        for update;
        if spent + quota.per_account > quota.quota_limit then
            return jsonb_build_object(
                'deferred_until', private.quota_next_reset(quota.resets, quota.reset_time_zone, now_ts),
                'reason', format('%s %s: %s of %s %s spent today; this sync needs %s, the rest waits for the reset',
                    target, quota.scope, spent, quota.quota_limit, quota.unit, quota.per_account),
                'retry', false);
        end if;
    end loop;
    update private.provider_quota_usage as u set used = u.used + q.per_account, updated_at = now_ts
    from private.provider_quotas as q
    where
        q.provider = target and q.applies_to = 'app' and q.resets = 'daily' and q.quota_limit is not null
        and q.per_account > 0 and u.provider = q.provider and u.scope = q.scope
        and u.period_start = private.quota_period_start(q.resets, q.reset_time_zone, now_ts);
    return jsonb_build_object('enforced', coalesce((
        select jsonb_agg(q.scope order by q.scope) from private.provider_quotas as q
        where q.provider = target and q.applies_to = 'app' and q.quota_limit is not null
    ), '[]'::jsonb));
end
$$;
comment on function private.begin_sync_quota(public.provider, uuid) is
'Before a sync''s first call: {"deferred_until", "reason"} when its provider or account is blocked or its '
'per-account cost does not fit a daily budget; otherwise reserves that cost (all or nothing) and answers '
'{"enforced": [the scopes with an app-wide limit]}: calls costing in one of them go through take_provider_call, the '
'others are only counted (record_provider_calls).';
revoke all on function private.begin_sync_quota(public.provider, uuid) from public, anon, authenticated;

create or replace function private.take_provider_call(target public.provider, account uuid, costs jsonb)
returns jsonb
language plpgsql volatile set search_path = ''
as $$
declare
    now_ts timestamptz := clock_timestamp();
    state private.provider_quota_state;
    blocked private.account_quota_blocks;
    quota record;
    units numeric;
    spent numeric;
    call_at timestamptz := now_ts;
begin
    -- The pacing state is a hint that may be replayed after a crash, like a lost sleep: its commit need not wait
    -- for the disk (the budgets are re-counted from usage rows written in the same transaction either way).
    perform set_config('synchronous_commit', 'off', true);
    select s.* into state from private.provider_quota_state as s where s.provider = target;
    if state.blocked_until > now_ts then
        return jsonb_build_object('deferred_until', state.blocked_until, 'reason', state.blocked_reason,
            'retry', true);
    end if;
    if account is not null then
        select b.* into blocked from private.account_quota_blocks as b where b.account_id = account;
        if blocked.blocked_until > now_ts then
            return jsonb_build_object('deferred_until', blocked.blocked_until, 'reason', blocked.reason,
                'retry', true);
        end if;
    end if;
    -- Budgets first, all or nothing; then the pacing of every rolling window the call counts in.
    for quota in
        select q.*, private.quota_period_start(q.resets, q.reset_time_zone, now_ts) as period
        from private.provider_quotas as q
        where q.provider = target and coalesce((costs ->> q.scope)::numeric, 0) > 0
        order by q.scope
        for update of q
    loop
        units := (costs ->> quota.scope)::numeric;
        insert into private.provider_quota_usage (provider, scope, period_start)
        values (target, quota.scope, quota.period) on conflict do nothing;
        if quota.applies_to <> 'app' then
            continue;
        elsif quota.resets = 'daily' and quota.quota_limit is not null then
            select u.used into spent from private.provider_quota_usage as u
            where u.provider = target and u.scope = quota.scope and u.period_start = quota.period
            for update;
            if spent + units > quota.quota_limit then
                return jsonb_build_object(
                    'deferred_until', private.quota_next_reset(quota.resets, quota.reset_time_zone, now_ts),
                    'reason', format('%s %s: %s of %s %s spent today; the rest waits for the reset',
                        target, quota.scope, spent, quota.quota_limit, quota.unit),
                    'retry', false);
            end if;
        elsif quota.resets = 'rolling' and quota.quota_limit is not null then
            call_at := greatest(call_at, quota.next_call_at);
        end if;
    end loop;
    -- GCRA: one call every (window + lateness) / (limit - 1) seconds, so even a call that reaches the provider
    -- `lateness` late never makes a rolling window hold more than `limit`.
    update private.provider_quotas as q
    set next_call_at = call_at + make_interval(secs => (costs ->> q.scope)::numeric
        * (q.window_seconds + q.lateness_seconds) / greatest(q.quota_limit - 1, 1))
    where
        q.provider = target and q.applies_to = 'app' and q.resets = 'rolling' and q.quota_limit is not null
        and coalesce((costs ->> q.scope)::numeric, 0) > 0;
    update private.provider_quota_usage as u
    set used = u.used + (costs ->> q.scope)::numeric, calls = u.calls + 1, updated_at = now_ts
    from private.provider_quotas as q
    where
        q.provider = target and coalesce((costs ->> q.scope)::numeric, 0) > 0
        and u.provider = q.provider and u.scope = q.scope
        and u.period_start = private.quota_period_start(q.resets, q.reset_time_zone, now_ts);
    return jsonb_build_object('wait', greatest(0, extract(epoch from call_at - now_ts)));
end
$$;
comment on function private.take_provider_call(public.provider, uuid, jsonb) is
'Before one provider call costing `costs` ({scope: units}): {"deferred_until", "reason", "retry"} when the provider '
'or the account is blocked or a daily budget has no room; otherwise charges the budgets, paces the rolling windows '
'(GCRA) and answers {"wait": seconds before calling}.';
revoke all on function private.take_provider_call(public.provider, uuid, jsonb) from public, anon, authenticated;

create or replace function private.record_provider_calls(target public.provider, tally jsonb)
returns void
language sql volatile set search_path = ''
as $$
    insert into private.provider_quota_usage as u (provider, scope, period_start, used, calls)
    select
        q.provider, q.scope, private.quota_period_start(q.resets, q.reset_time_zone, now()),
        (t.value ->> 'used')::numeric, (t.value ->> 'calls')::bigint
    from jsonb_each(record_provider_calls.tally) as t
    inner join private.provider_quotas as q on q.provider = record_provider_calls.target and q.scope = t.key
    on conflict on constraint provider_quota_usage_pkey do update
    set used = u.used + excluded.used, calls = u.calls + excluded.calls, updated_at = now()
$$;
comment on function private.record_provider_calls(public.provider, jsonb) is
'Counts a sync''s calls in the scopes nothing enforces app-wide ({scope: {"used", "calls"}}), for today''s figures '
'(arti quota, health): one statement at the end of the sync instead of one per call.';
revoke all on function private.record_provider_calls(public.provider, jsonb) from public, anon, authenticated;
