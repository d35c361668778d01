-- RPC metrics_summary: per account and metric, the latest value in a range and its change over the range.
create or replace function public.metrics_summary(org_id uuid, start_day date, end_day date)
returns table (
    account_id uuid,
    artist_id uuid,
    provider public.provider,
    metric text,
    baseline_day date,
    baseline_value numeric,
    latest_day date,
    latest_value numeric,
    abs_change numeric,
    pct_change numeric
)
language plpgsql stable security invoker set search_path = ''
as $$
#variable_conflict use_column
begin
    if auth.uid() is null then
        raise exception 'sign in first: this request carries no user (its token has no sub claim)'
        using errcode = '42501';
    end if;
    if metrics_summary.org_id is null then
        raise exception 'org_id is required' using errcode = '22023';
    end if;
    if start_day is null or end_day is null or start_day > end_day then
        raise exception 'start_day and end_day are required and start_day must be on or before end_day'
        using errcode = '22023';
    end if;
    if end_day - start_day > 730 then
        raise exception 'the range may span at most 731 days (2 years); this one spans % days',
            end_day - start_day + 1
        using errcode = '22023';
    end if;
    if metrics_summary.org_id not in (select private.my_org_ids()) then
        raise exception 'you are not a member of this organization' using errcode = '42501';
    end if;
    return query
    -- One scan, one hash aggregate, one evaluation of the RLS filter: min/max over [day, value] pairs
    -- pick the first and the last reported value of each series (arrays compare element by element,
    -- so the day decides) without sorting the range, even for the largest organizations.
    with bounds as (
        select
            m.account_id,
            m.metric,
            min(array[(m.day - date '2000-01-01')::numeric, m.value]) as first_pair,
            max(array[(m.day - date '2000-01-01')::numeric, m.value]) as last_pair
        from public.metrics as m
        where
            m.org_id = metrics_summary.org_id
            and m.day between start_day and end_day
            and m.value is not null
        group by m.account_id, m.metric
    )

    select
        b.account_id,
        a.artist_id,
        a.provider,
        b.metric,
        date '2000-01-01' + b.first_pair[1]::integer,
        b.first_pair[2],
        date '2000-01-01' + b.last_pair[1]::integer,
        b.last_pair[2],
        b.last_pair[2] - b.first_pair[2],
        round((b.last_pair[2] - b.first_pair[2]) / nullif(b.first_pair[2], 0) * 100, 2)
    from bounds as b
    -- The account's organization in the join (the same rows: metrics point at accounts of their own organization)
    -- lets the planner read the organization's accounts through (org_id, id) instead of hashing all of them.
    inner join public.connected_accounts as a on b.account_id = a.id and a.org_id = metrics_summary.org_id
    order by a.artist_id, a.provider, b.metric;
end
$$;
comment on function public.metrics_summary(uuid, date, date) is
'For each account and metric of an organization: first and latest reported value within the range, '
'absolute and percent change. The range spans at most 731 days (2 years). Errors: 22023 bad range, '
'42501 not a member.';
revoke all on function public.metrics_summary(uuid, date, date) from public, anon;
grant execute on function public.metrics_summary(uuid, date, date) to authenticated, service_role;
