-- Helpers naming metrics for people and telling cumulative counters from daily flows.
create or replace function private.metric_is_cumulative(metric text)
returns boolean
language sql immutable set search_path = ''
as $$
    -- Every "..._total" or "..._count" is a running total by its name; the others are listed.
    select metric ~ '_(total|count)$' or metric in (
        'followers', 'subscribers', 'releases', 'following', 'videos', 'tracks'
    )
$$;
comment on function private.metric_is_cumulative(text) is
'True for running totals (followers, plays_total, any *_total or *_count, tracks...), whose daily change is what '
'moves; false for daily flows (views, plays, reach...).';

create or replace function private.metric_label(provider public.provider, metric text)
returns text
language sql immutable set search_path = ''
as $$
    select
        case provider
            when 'spotify' then 'Spotify'
            when 'youtube' then 'YouTube'
            when 'instagram' then 'Instagram'
            when 'soundcloud' then 'SoundCloud'
            when 'tiktok' then 'TikTok'
        end
        || ' '
        || replace(regexp_replace(metric, '_(count|total)$', ''), '_', ' ')
$$;
comment on function private.metric_label(public.provider, text) is
'Human name of a metric, e.g. (spotify, followers) -> "Spotify followers".';

revoke all on function private.metric_is_cumulative(text), private.metric_label(public.provider, text) from public;
