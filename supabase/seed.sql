-- =============================================================================================
-- Demo data: one organization ("Northstar Music") with a user in every role, three artists,
-- accounts on all five providers and a year of daily metrics (deterministic, with a few spikes),
-- so dashboards, insights and benchmarks have something to show.
-- Users are written exactly as GoTrue's admin API writes them (nil instance_id, aud and role
-- `authenticated`, empty token columns, an `email` identity), so GoTrue can sign them in where it
-- runs (docker and cloud modes). Password for every demo user: "arti-demo-password".
-- =============================================================================================

insert into auth.users (
    instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
    confirmation_token, recovery_token, email_change_token_new, email_change, email_change_token_current,
    phone_change, phone_change_token, reauthentication_token,
    raw_app_meta_data, raw_user_meta_data, is_super_admin, created_at, updated_at, is_sso_user, is_anonymous
)
select
    '00000000-0000-0000-0000-000000000000'::uuid as instance_id,
    u.id::uuid,
    'authenticated' as aud,
    'authenticated' as role,
    u.email,
    extensions.crypt('arti-demo-password', extensions.gen_salt('bf', 10)) as encrypted_password,
    now() as email_confirmed_at,
    '' as confirmation_token,
    '' as recovery_token,
    '' as email_change_token_new,
    '' as email_change,
    '' as email_change_token_current,
    '' as phone_change,
    '' as phone_change_token,
    '' as reauthentication_token,
    jsonb_build_object('provider', 'email', 'providers', jsonb_build_array('email'))
    || case when u.email like 'ops@%' then '{"platform_admin": true}'::jsonb else '{}'::jsonb end
        as raw_app_meta_data,
    jsonb_build_object('full_name', u.full_name) as raw_user_meta_data,
    false as is_super_admin,
    now() as created_at,
    now() as updated_at,
    false as is_sso_user,
    false as is_anonymous
from (
    values
    ('00000000-0000-4000-a000-000000000001', 'owner@northstar.test', 'Olivia Owner'),
    ('00000000-0000-4000-a000-000000000002', 'admin@northstar.test', 'Adam Admin'),
    ('00000000-0000-4000-a000-000000000003', 'manager@northstar.test', 'Maya Manager'),
    ('00000000-0000-4000-a000-000000000004', 'analyst@northstar.test', 'Ana Analyst'),
    ('00000000-0000-4000-a000-000000000005', 'viewer@northstar.test', 'Victor Viewer'),
    ('00000000-0000-4000-a000-000000000009', 'ops@arti.test', 'Opal Ops')
) as u (id, email, full_name)
on conflict (id) do nothing;

-- GoTrue signs in with a password through the user's `email` identity (provider_id = the user id).
insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
select
    u.id::text as provider_id,
    u.id as user_id,
    jsonb_build_object('sub', u.id::text, 'email', u.email, 'email_verified', true, 'phone_verified', false)
        as identity_data,
    'email' as provider,
    now() as last_sign_in_at,
    now() as created_at,
    now() as updated_at
from auth.users as u
where u.id in (
        '00000000-0000-4000-a000-000000000001', '00000000-0000-4000-a000-000000000002',
        '00000000-0000-4000-a000-000000000003', '00000000-0000-4000-a000-000000000004',
        '00000000-0000-4000-a000-000000000005', '00000000-0000-4000-a000-000000000009'
    )
on conflict (provider_id, provider) do nothing;

insert into public.organizations (id, name, slug, created_by)
values (
    '00000000-0000-4000-b000-000000000001', 'Northstar Music', 'northstar-music',
    '00000000-0000-4000-a000-000000000001'
)
on conflict (id) do nothing;

insert into public.memberships (org_id, user_id, role)
select
    '00000000-0000-4000-b000-000000000001'::uuid as org_id,
    m.user_id::uuid as user_id,
    m.role::public.org_role as role
from (
    values
    ('00000000-0000-4000-a000-000000000001', 'owner'),
    ('00000000-0000-4000-a000-000000000002', 'admin'),
    ('00000000-0000-4000-a000-000000000003', 'manager'),
    ('00000000-0000-4000-a000-000000000004', 'analyst'),
    ('00000000-0000-4000-a000-000000000005', 'viewer')
) as m (user_id, role)
on conflict (org_id, user_id) do nothing;

insert into public.artists (id, org_id, name, genres, created_by)
select
    a.id::uuid,
    '00000000-0000-4000-b000-000000000001'::uuid as org_id,
    a.name,
    a.genres::text[],
    '00000000-0000-4000-a000-000000000003'::uuid as created_by
from (
    values
    ('00000000-0000-4000-c000-000000000001', 'Luna Vale', '{indie pop,dream pop}'),
    ('00000000-0000-4000-c000-000000000002', 'The Quiet Engines', '{alt rock}'),
    ('00000000-0000-4000-c000-000000000003', 'DJ Koa', '{house,electronic}')
) as a (id, name, genres)
on conflict (id) do nothing;

insert into public.campaigns (id, org_id, artist_id, name, starts_on, ends_on, budget, goals, status, notes, created_by)
values
(
    '00000000-0000-4000-e000-000000000001',
    '00000000-0000-4000-b000-000000000001', '00000000-0000-4000-c000-000000000001', 'Moonrise single launch',
    current_date - 40, current_date + 20, 12000, '{"spotify.followers": 60000}', 'active',
    'TikTok creator push in week 1, Spotify editorial pitch, playlist ads in week 3.',
    '00000000-0000-4000-a000-000000000003'
),
(
    '00000000-0000-4000-e000-000000000002',
    '00000000-0000-4000-b000-000000000001', '00000000-0000-4000-c000-000000000002', 'Autumn tour teaser',
    current_date - 120, current_date - 60, 4500, '{"youtube.views": 250000}', 'completed',
    'YouTube pre-roll ads around the tour announcement video.', '00000000-0000-4000-a000-000000000003'
)
on conflict (id) do nothing;

insert into public.connected_accounts (
    id, org_id, artist_id, provider, external_id, display_name,
    last_synced_at, next_sync_at, connected_by
)
select
    c.id::uuid,
    '00000000-0000-4000-b000-000000000001'::uuid as org_id,
    c.artist_id::uuid,
    c.provider::public.provider,
    c.external_id,
    c.display_name,
    now() - interval '6 hours' as last_synced_at,
    date_trunc('day', now()) + interval '1 day 2 hours' as next_sync_at,
    '00000000-0000-4000-a000-000000000003'::uuid as connected_by
from (
    values
    (
        '00000000-0000-4000-d000-000000000001', '00000000-0000-4000-c000-000000000001', 'spotify',
        '4lunaVale0000000000000', 'Luna Vale'
    ),
    (
        '00000000-0000-4000-d000-000000000002', '00000000-0000-4000-c000-000000000001', 'instagram',
        '17841400000000001', 'lunavale'
    ),
    (
        '00000000-0000-4000-d000-000000000003', '00000000-0000-4000-c000-000000000002', 'youtube',
        'UCquietengines000000000', 'The Quiet Engines'
    ),
    (
        '00000000-0000-4000-d000-000000000004', '00000000-0000-4000-c000-000000000003', 'soundcloud',
        '90000001', 'djkoa'
    ),
    (
        '00000000-0000-4000-d000-000000000005', '00000000-0000-4000-c000-000000000001', 'tiktok',
        '-000lunaVaLe0TikTok0penId0000000000', 'lunavale'
    )
) as c (id, artist_id, provider, external_id, display_name)
on conflict (id) do nothing;

-- A year of daily metrics: a steady trend, a weekly wiggle and deterministic spikes. TikTok's `views` are the
-- daily views of the account's recent videos (a flow), its followers, likes and videos running totals.
insert into public.metrics (account_id, metric, day, org_id, value, note)
select
    s.account_id::uuid,
    s.metric,
    current_date - 366 + d.n as day,
    '00000000-0000-4000-b000-000000000001'::uuid as org_id,
    case
        when s.metric = 'popularity' then least(100, round(s.base + d.n * s.trend / 40 + 3 * sin(d.n / 7.0)))
        when private.metric_is_cumulative(s.metric)
            -- running totals: a steady climb with a small wiggle, and a jump two days ago
            then round(
                    s.base + d.n * s.trend + s.trend * 0.3 * sin(d.n / 3.5)
                    + case when d.n >= 363 then s.trend * 12 else 0 end
                )
        -- daily flows: a weekly rhythm and one-day spikes
        else round(
                s.base + d.n * s.trend + s.base * 0.05 * sin(d.n / 1.1)
                + case when d.n in (200, 363) then s.base * 0.9 else 0 end
            )
    end as value,
    null as note
from (
    values
    ('00000000-0000-4000-d000-000000000001', 'followers', 41000, 45),
    ('00000000-0000-4000-d000-000000000001', 'popularity', 52, 1),
    ('00000000-0000-4000-d000-000000000002', 'followers_count', 18500, 22),
    ('00000000-0000-4000-d000-000000000002', 'reach', 9000, 4),
    ('00000000-0000-4000-d000-000000000003', 'subscribers', 127000, 60),
    ('00000000-0000-4000-d000-000000000003', 'views', 21000, 10),
    ('00000000-0000-4000-d000-000000000004', 'followers_count', 8800, 6),
    ('00000000-0000-4000-d000-000000000004', 'plays_total', 1500000, 2100),
    ('00000000-0000-4000-d000-000000000005', 'followers', 48000, 60),
    ('00000000-0000-4000-d000-000000000005', 'likes_total', 1000000, 900),
    ('00000000-0000-4000-d000-000000000005', 'videos', 40, 0.2),
    ('00000000-0000-4000-d000-000000000005', 'views', 25000, 15)
) as s (account_id, metric, base, trend)
cross join lateral generate_series(1, 365) as d (n)
on conflict (account_id, metric, day) do nothing;

insert into public.sync_runs (
    org_id, account_id, status, trigger, queued_at, started_at, finished_at,
    days_fetched, metrics_written
)
select
    a.org_id,
    a.id as account_id,
    'succeeded' as status,
    'schedule' as trigger,
    now() - interval '6 hours 1 minute' as queued_at,
    now() - interval '6 hours 1 minute' as started_at,
    now() - interval '6 hours' as finished_at,
    3 as days_fetched,
    6 as metrics_written
from public.connected_accounts as a
where
    a.org_id = '00000000-0000-4000-b000-000000000001'
    and not exists (
        select 1 from public.sync_runs as r
        where r.account_id = a.id
    );

-- TikTok's last snapshot: each recent video's lifetime counts, the baseline its next sync's daily views start from.
insert into public.metric_snapshots (org_id, account_id, endpoint, fetched_at, payload)
select
    '00000000-0000-4000-b000-000000000001'::uuid as org_id,
    '00000000-0000-4000-d000-000000000005'::uuid as account_id,
    'fetch_metrics' as endpoint,
    now() - interval '6 hours' as fetched_at,
    jsonb_build_object('points', jsonb_build_array(jsonb_build_object(
        'metric', 'views',
        'day', current_date - 1,
        'raw', jsonb_build_object('video_count', 3, 'pages', 1, 'more_videos', false, 'videos', jsonb_build_array(
            jsonb_build_object(
                'id', '7430000000000000003', 'title', 'Moonrise (sped up)', 'view_count', 412000,
                'like_count', 51200, 'comment_count', 1900, 'share_count', 3400
            ),
            jsonb_build_object(
                'id', '7430000000000000002', 'title', 'Moonrise teaser', 'view_count', 98000,
                'like_count', 9100, 'comment_count', 420, 'share_count', 610
            ),
            jsonb_build_object(
                'id', '7430000000000000001', 'title', 'Studio day', 'view_count', 15500,
                'like_count', 1200, 'comment_count', 64, 'share_count', 31
            )
        ))
    ))) as payload
where not exists (
        select 1 from public.metric_snapshots as m
        where m.account_id = '00000000-0000-4000-d000-000000000005'
    );

-- Insights at once, as a sync's insights job would leave them (jobs/insights.py refresh_insights): the anomalies in
-- each account's last week (the jump and the spikes three days ago), which also notify the members, then each
-- artist's retrieval chunks (weekly movement per metric, the anomalies, the campaigns), so that /insights/ask
-- answers from the first start. Both functions are idempotent (anomalies deduplicated, chunks upserted), so the
-- seed stays loadable twice. Chunks are written without embeddings: full text answers (ARTI_EMBEDDING_PROVIDER
-- none); with an embedding provider, the worker's embed_documents job fills them after the next sync.
select private.detect_anomalies(a.id) as anomalies
from public.connected_accounts as a
where a.org_id = '00000000-0000-4000-b000-000000000001'
order by a.id;

select private.refresh_documents(ar.id) as chunks
from public.artists as ar
where ar.org_id = '00000000-0000-4000-b000-000000000001'
order by ar.id;
