-- RPC metrics_timeseries: one metric of several accounts over a date range, bucketed by day, week or month.
-- Security invoker: RLS on public.metrics decides which accounts the caller sees.
create or replace function public.metrics_timeseries(
    account_ids uuid[], metric text, start_day date, end_day date, bucket text default 'day'
)
returns table (
    account_id uuid,
    bucket_start date,
    value_last numeric,
    value_sum numeric,
    value_avg numeric,
    value_min numeric,
    value_max numeric,
    days_reported integer,
    days_not_provided integer
)
language plpgsql stable security invoker set search_path = ''
as $$
#variable_conflict use_column
begin
    if auth.uid() is null then
        raise exception 'sign in first: this request carries no user (its token has no sub claim)'
        using errcode = '42501';
    end if;
    if account_ids is null or cardinality(account_ids) = 0 then
        raise exception 'account_ids must list at least one account' using errcode = '22023';
    end if;
    if cardinality(account_ids) > 200 then
        raise exception 'account_ids may list at most 200 accounts' using errcode = '22023';
    end if;
    if metric is null or btrim(metric) = '' then
        raise exception 'metric is required, e.g. followers' using errcode = '22023';
    end if;
    if char_length(metric) > 63 then
        raise exception 'metric may be at most 63 characters (metric names are)' using errcode = '22023';
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
    if bucket is null or bucket not in ('day', 'week', 'month') then
        raise exception 'bucket must be day, week or month' using errcode = '22023';
    end if;
    return query
    select
        m.account_id,
        date_trunc(bucket, m.day::timestamp)::date as bucket_start,
        (array_agg(m.value order by m.day desc) filter (where m.value is not null))[1],
        sum(m.value),
        round(avg(m.value), 4),
        min(m.value),
        max(m.value),
        (count(*) filter (where m.value is not null))::integer,
        (count(*) filter (where m.value is null))::integer
    from public.metrics as m
    where
        m.account_id = any(metrics_timeseries.account_ids)
        and m.metric = metrics_timeseries.metric
        and m.day between start_day and end_day
    group by m.account_id, date_trunc(bucket, m.day::timestamp)
    order by m.account_id, bucket_start;
end
$$;
comment on function public.metrics_timeseries(uuid[], text, date, date, text) is
'Bucketed series of one metric for the given accounts (RLS applies): last, sum, avg, min, max per bucket; '
'days_not_provided counts days the platform gave no value. At most 200 accounts and 731 days (2 years). '
'Errors: 22023 bad arguments.';
revoke all on function public.metrics_timeseries(uuid[], text, date, date, text) from public, anon;
grant execute on function public.metrics_timeseries(uuid[], text, date, date, text) to authenticated, service_role;
