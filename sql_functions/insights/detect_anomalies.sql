-- Anomaly detection after each sync: robust z-score of the daily movement against a trailing window.
create or replace function private.detect_anomalies(
    target_account uuid, check_days integer default 7, window_days integer default 28
)
returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
    account public.connected_accounts;
    artist_name text;
    new_count integer;
begin
    select * into account from public.connected_accounts as a where a.id = target_account;
    if account.id is null then
        raise exception 'connected account not found' using errcode = 'P0002';
    end if;
    select ar.name into artist_name from public.artists as ar where ar.id = account.artist_id;

    with series as (
        -- The movement of a day: its change for running totals, its value for daily flows.
        select
            m.metric,
            m.day,
            m.value,
            case
                when private.metric_is_cumulative(m.metric)
                    then m.value - lag(m.value) over (partition by m.metric order by m.day)
                else m.value
            end as movement
        from public.metrics as m
        where
            m.account_id = target_account
            and m.value is not null
            and m.day > (select max(x.day) from public.metrics as x where x.account_id = target_account)
            - (check_days + window_days + 1)
    ),

    candidates as (
        select s.metric, s.day, s.value, s.movement
        from series as s
        where
            s.movement is not null
            and s.day > (select max(x.day) from series as x) - check_days
    ),

    scored as (
        select
            c.*,
            b.baseline,
            b.points,
            d.mad,
            d.mean_abs_dev
        from candidates as c
        cross join lateral (
            select
                percentile_cont(0.5) within group (order by s.movement) as baseline,
                count(*) as points
            from series as s
            where s.metric = c.metric and s.day < c.day and s.day >= c.day - window_days and s.movement is not null
        ) as b
        cross join lateral (
            select
                percentile_cont(0.5) within group (order by abs(s.movement - b.baseline)) as mad,
                avg(abs(s.movement - b.baseline)) as mean_abs_dev
            from series as s
            where s.metric = c.metric and s.day < c.day and s.day >= c.day - window_days and s.movement is not null
        ) as d
        where b.points >= 14
    ),

    flagged as (
        select
            s.*,
            case
                when s.mad > 0 then 0.6745 * (s.movement - s.baseline) / s.mad
                when s.mean_abs_dev > 0 then (s.movement - s.baseline) / (1.2533 * s.mean_abs_dev)
            end as robust_z,
            round(((s.movement - s.baseline) / greatest(abs(s.baseline), 1) * 100)::numeric, 1) as pct_vs_usual
        from scored as s
    ),

    inserted as (
        insert into public.insights (
            org_id, artist_id, account_id, kind, metric, day, title, body, evidence, dedupe_key, created_by
        )
        select
            account.org_id,
            account.artist_id,
            account.id,
            'anomaly',
            f.metric,
            f.day,
            format(
                '%s: %s on %s (%s%s%% vs usual)',
                private.metric_label(account.provider, f.metric),
                case
                    when private.metric_is_cumulative(f.metric)
                        then case when f.movement >= 0 then '+' else '-' end
                        || to_char(abs(f.movement), 'FM999,999,999,990')
                    else to_char(f.movement, 'FM999,999,999,990')
                end,
                to_char(f.day, 'Mon DD'),
                case when f.pct_vs_usual >= 0 then '+' else '' end,
                round(f.pct_vs_usual)
            ),
            format(
                '%s for %s %s %s on %s against a usual %s (median of the previous %s days); robust z-score %s.',
                private.metric_label(account.provider, f.metric),
                artist_name,
                case
                    when private.metric_is_cumulative(f.metric)
                        then case when f.movement >= 0 then 'grew by' else 'fell by' end
                    else 'reached'
                end,
                to_char(abs(f.movement), 'FM999,999,999,990'),
                to_char(f.day, 'YYYY-MM-DD'),
                to_char(f.baseline, 'FM999,999,999,990'),
                f.points,
                round(f.robust_z::numeric, 1)
            ),
            jsonb_build_object(
                'value', f.value, 'movement', f.movement, 'baseline', f.baseline,
                'robust_z', round(f.robust_z::numeric, 2), 'pct_vs_usual', f.pct_vs_usual,
                'window_days', window_days, 'window_points', f.points,
                'cumulative', private.metric_is_cumulative(f.metric)
            ),
            format('%s:%s:%s:%s', account.id, f.metric, f.day, case when f.movement >= f.baseline then 'up' else 'down' end),
            null
        from flagged as f
        where abs(f.robust_z) >= 3.5 and abs(f.pct_vs_usual) >= 50
        on conflict (org_id, dedupe_key) do nothing
        returning 1
    )

    select count(*) into new_count from inserted;
    return new_count;
end
$$;
comment on function private.detect_anomalies(uuid, integer, integer) is
'Finds spikes and drops in the last check_days of an account''s metrics (robust z-score >= 3.5 of the daily '
'movement against the previous window_days, and >= 50% off the usual), writes each once as an anomaly insight. '
'Returns how many are new.';
revoke all on function private.detect_anomalies(uuid, integer, integer) from public;
