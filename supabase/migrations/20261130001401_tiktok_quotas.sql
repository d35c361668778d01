-- =============================================================================================
-- Migration: tiktok_quotas
-- TikTok's quota model (arti/providers/tiktok.py QUOTA; test_the_migration_holds_the_providers_specs
-- keeps these rows equal to it), in its own migration because 'tiktok' cannot be used in the
-- transaction that added it to public.provider (20261130001400_tiktok_provider).
--   * TikTok API v2 limits each endpoint separately: 600 requests in a one-minute sliding window
--     for /v2/user/info/ and for /v2/video/list/ (https://developers.tiktok.com/doc/tiktok-api-v2-rate-limit);
--     beyond, HTTP 429 with the error code rate_limit_exceeded. Two app-wide rolling scopes with a
--     limit: every call is paced by private.take_provider_call, whichever worker makes it.
--   * A daily sync of one account: GET /v2/user/info/ (the counts) and up to three pages of
--     POST /v2/video/list/ (the 60 most recent videos), all with the owner's token; nothing batches.
-- =============================================================================================

insert into private.provider_quotas (
    provider, scope, unit, quota_limit, window_seconds, resets, reset_time_zone, applies_to, per_account,
    per_batch, lateness_seconds, source, note
) values
(
    'tiktok', 'user_info_rolling_60s', 'calls', 600, 60, 'rolling', null, 'app', 1, 0, 1,
    'https://developers.tiktok.com/doc/tiktok-api-v2-rate-limit',
    '/v2/user/info/: 600 requests in a one-minute sliding window, limited separately from the other endpoints. '
    || 'Exceeded: 429 rate_limit_exceeded (no Retry-After documented: wait the window).'
),
(
    'tiktok', 'video_list_rolling_60s', 'calls', 600, 60, 'rolling', null, 'app', 3, 0, 1,
    'https://developers.tiktok.com/doc/tiktok-api-v2-rate-limit',
    '/v2/video/list/: 600 requests in a one-minute sliding window, limited separately from the other endpoints. '
    || 'Exceeded: 429 rate_limit_exceeded (no Retry-After documented: wait the window).'
)
on conflict (provider, scope) do nothing;

insert into private.provider_sync_costs (
    provider, batch_size, calls_per_account, calls_per_batch, owner_calls_per_account, note
) values (
    'tiktok', 1, 4, 0, 4,
    'GET /v2/user/info/ (counts), then POST /v2/video/list/ for the 60 most recent videos (3 pages of 20).'
)
on conflict (provider) do nothing;

insert into private.provider_quota_state (provider) values ('tiktok')
on conflict (provider) do nothing;
