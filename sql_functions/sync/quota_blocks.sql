-- Private helpers: what a provider announced. block_provider_quota stops every worker's calls to a provider until a
-- time (YouTube quotaExceeded: the midnight Pacific reset; a 429: its Retry-After); block_account_quota does the
-- same for one account (Instagram's per-account Business Use Case limits); record_provider_usage keeps the usage a
-- provider reported last (information for `arti quota` and /functions/v1/health).
create or replace function private.block_provider_quota(
    target public.provider, until timestamptz, reason text, scope text default null
)
returns timestamptz
language plpgsql volatile set search_path = ''
as $$
declare
    effective timestamptz;
    quota private.provider_quotas;
    block_end timestamptz := until;
begin
    select q.* into quota from private.provider_quotas as q
    where q.provider = target and q.scope = block_provider_quota.scope;
    if quota.resets = 'daily' then
        -- A daily budget the provider says is spent comes back at its documented reset, whatever was estimated.
        block_end := private.quota_next_reset(quota.resets, quota.reset_time_zone, now());
    end if;
    insert into private.provider_quota_state as s (provider, blocked_until, blocked_reason, blocked_at)
    values (target, block_end, left(reason, 500), now())
    on conflict (provider) do update set
        blocked_until = case
            when s.blocked_until > now() then greatest(s.blocked_until, excluded.blocked_until)
            else excluded.blocked_until
        end,
        blocked_reason = case
            when s.blocked_until > now() and s.blocked_until > excluded.blocked_until then s.blocked_reason
            else excluded.blocked_reason
        end,
        blocked_at = excluded.blocked_at
    returning s.blocked_until into effective;
    -- The provider says a daily budget is spent: the planner must see it spent too, whatever we counted.
    if quota.resets = 'daily' and quota.quota_limit is not null then
        insert into private.provider_quota_usage as u (provider, scope, period_start, used)
        values (target, quota.scope, private.quota_period_start(quota.resets, quota.reset_time_zone, now()),
            quota.quota_limit)
        on conflict on constraint provider_quota_usage_pkey do update set
            used = greatest(u.used, excluded.used), updated_at = now();
    end if;
    return effective;
end
$$;
comment on function private.block_provider_quota(public.provider, timestamptz, text, text) is
'Records a provider''s announced exhaustion: no worker calls it before `until` (a later block already in force '
'is kept). With the scope of a daily budget, the block ends at that budget''s reset and the budget counts as spent '
'for the current day. Returns the block''s end.';
revoke all on function private.block_provider_quota(public.provider, timestamptz, text, text)
from public, anon, authenticated;

create or replace function private.block_account_quota(
    account uuid, until timestamptz, reason text, reported jsonb default null
)
returns timestamptz
language plpgsql volatile set search_path = ''
as $$
declare
    effective timestamptz;
begin
    insert into private.account_quota_blocks as b (account_id, blocked_until, reason, reported, reported_at)
    values (account, until, left(reason, 500), reported, now())
    on conflict (account_id) do update set
        blocked_until = case
            when b.blocked_until > now() then greatest(b.blocked_until, excluded.blocked_until)
            else excluded.blocked_until
        end,
        reason = excluded.reason,
        reported = coalesce(excluded.reported, b.reported),
        reported_at = now()
    returning b.blocked_until into effective;
    return effective;
end
$$;
comment on function private.block_account_quota(uuid, timestamptz, text, jsonb) is
'Records a per-account limit the provider announced: the account''s calls wait until `until`. Returns the end.';
revoke all on function private.block_account_quota(uuid, timestamptz, text, jsonb) from public, anon, authenticated;

create or replace function private.record_provider_usage(target public.provider, reported jsonb)
returns void
language sql volatile set search_path = ''
as $$
    insert into private.provider_quota_state as s (provider, reported, reported_at)
    values (record_provider_usage.target, record_provider_usage.reported, now())
    on conflict (provider) do update set reported = excluded.reported, reported_at = excluded.reported_at
$$;
comment on function private.record_provider_usage(public.provider, jsonb) is
'Keeps the usage a provider reported last (e.g. Meta''s X-App-Usage percentages), for information.';
revoke all on function private.record_provider_usage(public.provider, jsonb) from public, anon, authenticated;
