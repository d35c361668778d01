-- RPC top_movers: the accounts whose metric moved most (by percent) over the last window_days.
create or replace function public.top_movers(
    org_id uuid, metric text, window_days integer default 7, max_results integer default 10
)
returns table (
    account_id uuid,
    artist_id uuid,
    artist_name text,
    provider public.provider,
    start_day date,
    start_value numeric,
    end_day date,
    end_value numeric,
    abs_change numeric,
    pct_change numeric
)
language plpgsql stable security invoker set search_path = ''
as $$
#variable_conflict use_column
declare
    last_day date;
begin
    if auth.uid() is null then
        raise exception 'sign in first: this request carries no user (its token has no sub claim)'
        using errcode = '42501';
    end if;
    if top_movers.org_id is null then
        raise exception 'org_id is required' using errcode = '22023';
    end if;
    if metric is null or btrim(metric) = '' then
        raise exception 'metric is required, e.g. followers' using errcode = '22023';
    end if;
    if char_length(metric) > 63 then
        raise exception 'metric may be at most 63 characters (metric names are)' using errcode = '22023';
    end if;
    if window_days is null or window_days not between 1 and 365 then
        raise exception 'window_days must be between 1 and 365' using errcode = '22023';
    end if;
    if max_results is null or max_results not between 1 and 100 then
        raise exception 'max_results must be between 1 and 100' using errcode = '22023';
    end if;
    if top_movers.org_id not in (select private.my_org_ids()) then
        raise exception 'you are not a member of this organization' using errcode = '42501';
    end if;
    select max(m.day) into last_day
    from public.metrics as m
    where m.org_id = top_movers.org_id and m.metric = top_movers.metric and m.value is not null;
    return query
    with windowed as (
        select m.account_id, m.day, m.value
        from public.metrics as m
        where
            m.org_id = top_movers.org_id
            and m.metric = top_movers.metric
            and m.value is not null
            and m.day between last_day - window_days and last_day
    ),

    ends as (
        select
            w.account_id,
            (array_agg(w.day order by w.day))[1] as first_day,
            (array_agg(w.value order by w.day))[1] as first_value,
            (array_agg(w.day order by w.day desc))[1] as final_day,
            (array_agg(w.value order by w.day desc))[1] as final_value
        from windowed as w
        group by w.account_id
    )

    select
        e.account_id,
        a.artist_id,
        ar.name,
        a.provider,
        e.first_day,
        e.first_value,
        e.final_day,
        e.final_value,
        e.final_value - e.first_value,
        round((e.final_value - e.first_value) / nullif(e.first_value, 0) * 100, 2)
    from ends as e
    inner join public.connected_accounts as a on e.account_id = a.id
    inner join public.artists as ar on a.artist_id = ar.id
    where e.final_day > e.first_day
    order by abs((e.final_value - e.first_value) / nullif(e.first_value, 0)) desc nulls last, e.account_id
    limit max_results;
end
$$;
comment on function public.top_movers(uuid, text, integer, integer) is
'Accounts of an organization ranked by percent change of a metric over the window ending on the latest '
'reported day. Errors: 22023 bad arguments, 42501 not a member.';
revoke all on function public.top_movers(uuid, text, integer, integer) from public, anon;
grant execute on function public.top_movers(uuid, text, integer, integer) to authenticated, service_role;
