-- Documents for retrieval: short factual chunks per artist and period, rebuilt idempotently.
create or replace function private.refresh_documents(target_artist uuid, weeks integer default 12)
returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
    artist public.artists;
    changed integer := 0;
    step integer;
begin
    select * into artist from public.artists as a where a.id = target_artist;
    if artist.id is null then
        raise exception 'artist not found' using errcode = 'P0002';
    end if;

    -- Weekly movement of every metric of every account of the artist.
    with weekly as (
        select
            a.id as account_id,
            a.provider,
            m.metric,
            date_trunc('week', m.day::timestamp)::date as week_start,
            (array_agg(m.value order by m.day) filter (where m.value is not null))[1] as first_value,
            (array_agg(m.value order by m.day desc) filter (where m.value is not null))[1] as last_value,
            sum(m.value) as total,
            count(*) filter (where m.value is null) as missing
        from public.metrics as m
        inner join public.connected_accounts as a on m.account_id = a.id
        where
            a.artist_id = target_artist
            and m.day >= date_trunc('week', now())::date - 7 * weeks
        group by a.id, a.provider, m.metric, date_trunc('week', m.day::timestamp)
    ),

    texts as (
        select
            w.*,
            format(
                '%s for %s %s in week %s of %s (%s to %s)%s.',
                private.metric_label(w.provider, w.metric),
                artist.name,
                case
                    when w.first_value is null then 'were not provided by the platform'
                    when private.metric_is_cumulative(w.metric) then
                        case
                            when w.last_value > w.first_value then 'rose '
                            when w.last_value < w.first_value then 'fell '
                            else 'held steady '
                        end
                        || case
                            when w.first_value <> 0 and w.last_value <> w.first_value
                                then to_char(abs(w.last_value - w.first_value) / abs(w.first_value) * 100, 'FM990.0')
                                || '% '
                            else ''
                        end
                        || format(
                            '(%s to %s)',
                            to_char(w.first_value, 'FM999,999,999,990'), to_char(w.last_value, 'FM999,999,999,990')
                        )
                    else 'totalled ' || to_char(w.total, 'FM999,999,999,990')
                end,
                to_char(w.week_start, 'IW'),
                to_char(w.week_start, 'IYYY'),
                to_char(w.week_start, 'Mon DD'),
                to_char(w.week_start + 6, 'Mon DD'),
                case when w.missing > 0 then format('; %s day(s) not provided', w.missing) else '' end
            ) as content
        from weekly as w
    ),

    upserted as (
        insert into public.documents (org_id, artist_id, source, source_key, period_start, period_end, content)
        select
            artist.org_id,
            artist.id,
            'metrics',
            format('%s:%s:%s', t.account_id, t.metric, t.week_start),
            t.week_start,
            t.week_start + 6,
            t.content
        from texts as t
        on conflict (org_id, source, source_key) do update
            set content = excluded.content, embedding = null, embedding_model = null
            where public.documents.content is distinct from excluded.content
        returning 1
    )

    select count(*) into step from upserted;
    changed := changed + step;

    -- Anomalies, as their insight text.
    with upserted as (
        insert into public.documents (org_id, artist_id, source, source_key, period_start, period_end, content)
        select i.org_id, i.artist_id, 'anomaly', i.id::text, i.day, i.day, left(i.title || '. ' || i.body, 4000)
        from public.insights as i
        where i.artist_id = target_artist and i.kind = 'anomaly'
        on conflict (org_id, source, source_key) do update
            set content = excluded.content, embedding = null, embedding_model = null
            where public.documents.content is distinct from excluded.content
        returning 1
    )

    select count(*) into step from upserted;
    changed := changed + step;

    -- Campaigns and their notes.
    with upserted as (
        insert into public.documents (org_id, artist_id, source, source_key, period_start, period_end, content)
        select
            c.org_id,
            c.artist_id,
            'campaign',
            c.id::text,
            c.starts_on,
            c.ends_on,
            left(format(
                'Campaign "%s" for %s (%s, %s to %s%s). %s',
                c.name, artist.name, c.status, to_char(c.starts_on, 'YYYY-MM-DD'),
                coalesce(to_char(c.ends_on, 'YYYY-MM-DD'), 'open-ended'),
                case when c.budget is not null then format(', budget %s %s', c.budget, c.currency) else '' end,
                coalesce(c.notes, '')
            ), 4000)
        from public.campaigns as c
        where c.artist_id = target_artist
        on conflict (org_id, source, source_key) do update
            set content = excluded.content, embedding = null, embedding_model = null, period_end = excluded.period_end
            where public.documents.content is distinct from excluded.content
        returning 1
    )

    select count(*) into step from upserted;
    return changed + step;
end
$$;
comment on function private.refresh_documents(uuid, integer) is
'Rebuilds the retrieval chunks of an artist (weekly metric movements, anomalies, campaigns); changed chunks lose '
'their embedding so the embedding job redoes them. Returns how many chunks were written.';
revoke all on function private.refresh_documents(uuid, integer) from public;
