-- Private helpers quota_period_start / quota_next_reset: the window a provider quota charges at a given time.
-- A daily scope's day starts at midnight in its own time zone (YouTube: America/Los_Angeles); a rolling scope has
-- no reset, and its calls are tallied per UTC day for information.
create or replace function private.quota_period_start(resets text, reset_time_zone text, at timestamptz)
returns timestamptz
language sql stable set search_path = ''
as $$
    select case
        when quota_period_start.resets = 'daily'
            then date_trunc('day', quota_period_start.at at time zone quota_period_start.reset_time_zone)
            at time zone quota_period_start.reset_time_zone
        else date_trunc('day', quota_period_start.at at time zone 'UTC') at time zone 'UTC'
    end
$$;
comment on function private.quota_period_start(text, text, timestamptz) is
'Start of the period a quota charges at `at`: midnight in reset_time_zone for a daily scope, midnight UTC for a '
'rolling one (whose calls are tallied per UTC day, for information).';
revoke all on function private.quota_period_start(text, text, timestamptz) from public, anon, authenticated;

create or replace function private.quota_next_reset(resets text, reset_time_zone text, at timestamptz)
returns timestamptz
language sql stable set search_path = ''
as $$
    select case
        when quota_next_reset.resets = 'daily'
            then (
                date_trunc('day', quota_next_reset.at at time zone quota_next_reset.reset_time_zone)
                + interval '1 day'
            ) at time zone quota_next_reset.reset_time_zone
        else date_trunc('day', quota_next_reset.at at time zone 'UTC') at time zone 'UTC' + interval '1 day'
    end
$$;
comment on function private.quota_next_reset(text, text, timestamptz) is
'When the period containing `at` ends: the next midnight in reset_time_zone for a daily scope (daylight saving '
'included), the next midnight UTC for a rolling one.';
revoke all on function private.quota_next_reset(text, text, timestamptz) from public, anon, authenticated;
