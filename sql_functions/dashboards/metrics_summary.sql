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
    if start_day is null or end_day is null or start_day > end_day then
        raise exception 'start_day and end_day are required and start_day must be on or before end_day'
        using errcode = '22023';
    end if;
    if metrics_summary.org_id not in (select private.my_org_ids()) then
        raise exception 'you are not a member of this organization' using errcode = '42501';
    end if;
    return query
    with in_range as (
        select m.account_id, m.metric, m.day, m.value
        from public.metrics as m
        where
            m.org_id = metrics_summary.org_id
            and m.day between start_day and end_day
            and m.value is not null
    ),

    latest as (
        select distinct on (r.account_id, r.metric) r.account_id, r.metric, r.day, r.value
        from in_range as r
        order by r.account_id, r.metric, r.day desc
    ),

    baseline as (
        select distinct on (r.account_id, r.metric) r.account_id, r.metric, r.day, r.value
        from in_range as r
        order by r.account_id, r.metric, r.day asc
    )

    select
        l.account_id,
        a.artist_id,
        a.provider,
        l.metric,
        b.day,
        b.value,
        l.day,
        l.value,
        l.value - b.value,
        round((l.value - b.value) / nullif(b.value, 0) * 100, 2)
    from latest as l
    inner join baseline as b on l.account_id = b.account_id and l.metric = b.metric
    inner join public.connected_accounts as a on l.account_id = a.id
    order by a.artist_id, a.provider, l.metric;
end
$$;
comment on function public.metrics_summary(uuid, date, date) is
'For each account and metric of an organization: first and latest reported value within the range, '
'absolute and percent change. Errors: 22023 bad range, 42501 not a member.';
revoke all on function public.metrics_summary(uuid, date, date) from public, anon;
grant execute on function public.metrics_summary(uuid, date, date) to authenticated, service_role;
