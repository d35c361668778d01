-- =============================================================================================
-- Migration: provider quotas: a documented quota model per provider, shared by every worker
--   * At the scale the benchmarks model (10,000 connected accounts) the limit on a daily sync is
--     the providers' quotas, not Postgres. Nothing planned a day's work against them: YouTube's
--     channels.list?mine=true was called once per account (1 unit of the project's 10,000 a day).
--   * private.provider_quotas: one row per documented limit ("scope") of a provider, from the
--     provider's own documentation (cited in `source`; the Python specs in arti/providers/* are
--     the source of these rows and a test keeps them equal): what it counts (calls or units), the
--     limit (NULL when the provider documents the limit but no number we can use), the window
--     (rolling, or a day that resets at midnight in `reset_time_zone`), whether it applies to the
--     app or to each account, and what one account's daily sync spends in it (`per_account`) and
--     what one batched call spends (`per_batch`). App-wide
--     rolling scopes with a limit pace every call (GCRA: `next_call_at`); app-wide daily scopes
--     with a limit are a budget (private.provider_quota_usage, charged before each call).
--   * private.provider_sync_costs: calls per account and per batch of a provider's daily sync
--     (the planner's and `arti quota`'s arithmetic).
--   * private.provider_quota_state: a provider's announced exhaustion (YouTube quotaExceeded,
--     a 429 with Retry-After): nobody calls it before blocked_until, whichever worker they are;
--     and the usage the provider last reported (X-App-Usage), for information.
--   * private.account_quota_blocks: the same for one account (Instagram's Business Use Case
--     limits are per account and reported in X-Business-Use-Case-Usage).
--   * private.sync_batches / sync_batch_items: the planner groups a day's accounts of a provider
--     whose public data one call can fetch (YouTube channels.list?id=, up to 50; Spotify
--     GET /v1/artists?ids=, up to 50); the first sync of a group to run fetches the whole group,
--     the others read its result. Kept two days.
--   * public.sync_runs.deferred_until / deferred_reason: a sync that does not fit the budget, or
--     whose provider (or account) is blocked, is not failed: it waits in the queue until then, and
--     says why.
--   * The shared token bucket of the first design (private.provider_rate_limits, with
--     take_rate_limit_token and block_provider_until) is replaced by the scopes above: its
--     limits were no provider's.
-- =============================================================================================

-- ---------------------------------------------------------------------------------------------
-- the quota model
-- ---------------------------------------------------------------------------------------------
create table private.provider_quotas (
    provider public.provider not null,
    scope text not null check (scope ~ '^[a-z][a-z0-9_]{0,62}$'),
    unit text not null default 'calls' check (unit in ('calls', 'units')),
    quota_limit numeric check (quota_limit > 0),
    window_seconds integer not null check (window_seconds > 0),
    resets text not null check (resets in ('rolling', 'daily')),
    reset_time_zone text check (char_length(reset_time_zone) <= 64),
    applies_to text not null default 'app' check (applies_to in ('app', 'account')),
    per_account numeric not null default 0 check (per_account >= 0),
    per_batch numeric not null default 0 check (per_batch >= 0),
    lateness_seconds numeric not null default 1 check (lateness_seconds >= 0 and lateness_seconds <= 60),
    source text not null check (char_length(source) <= 500),
    note text check (char_length(note) <= 2000),
    next_call_at timestamptz not null default '-infinity',
    updated_at timestamptz not null default now(),
    primary key (provider, scope),
    check (resets = 'rolling' or reset_time_zone is not null)
);
comment on table private.provider_quotas is
'One documented limit ("scope") of a provider, from its documentation (source). App-wide rolling scopes with a '
'limit pace every call; app-wide daily scopes with a limit are a budget charged before each call; the others are '
'information (enforced by what the provider announces). Rows come from the specs in arti/providers/*; an operator '
'may change quota_limit and lateness_seconds (the specs never overwrite them).';
comment on column private.provider_quotas.provider is 'The provider.';
comment on column private.provider_quotas.scope is 'Name of the limit, e.g. data_api_daily or rolling_30s.';
comment on column private.provider_quotas.unit is 'What quota_limit counts: calls, or the provider''s units.';
comment on column private.provider_quotas.quota_limit is
'Calls or units allowed per window; NULL when the provider documents the limit without a number we can use.';
comment on column private.provider_quotas.window_seconds is 'Length of the window (86400 for a day).';
comment on column private.provider_quotas.resets is
'rolling: any window of window_seconds; daily: a day starting at midnight in reset_time_zone.';
comment on column private.provider_quotas.reset_time_zone is 'Time zone whose midnight starts a daily window.';
comment on column private.provider_quotas.applies_to is 'app: one budget for the whole app; account: one per account.';
comment on column private.provider_quotas.per_account is
'What one account''s daily sync spends in this scope, outside the batched call.';
comment on column private.provider_quotas.per_batch is
'What one batched call spends in this scope (the batch size is private.provider_sync_costs.batch_size).';
comment on column private.provider_quotas.lateness_seconds is
'Pacing margin of a rolling scope: how late a paced call may reach the provider without exceeding the window.';
comment on column private.provider_quotas.source is 'The provider''s documentation page this limit comes from.';
comment on column private.provider_quotas.note is 'What the documentation says, and how we apply it.';
comment on column private.provider_quotas.next_call_at is
'Pacing state of a rolling scope (GCRA theoretical arrival time): the next call may start then.';
comment on column private.provider_quotas.updated_at is 'When the row was last written from a spec.';

create table private.provider_sync_costs (
    provider public.provider primary key,
    batch_size integer not null default 1 check (batch_size between 1 and 1000),
    calls_per_account numeric not null check (calls_per_account >= 0),
    calls_per_batch numeric not null default 0 check (calls_per_batch >= 0),
    owner_calls_per_account numeric not null default 0 check (owner_calls_per_account >= 0),
    note text check (char_length(note) <= 2000),
    updated_at timestamptz not null default now()
);
comment on table private.provider_sync_costs is
'Provider calls of one account''s daily sync (from the specs in arti/providers/*): what the planner and arti quota '
'count.';
comment on column private.provider_sync_costs.provider is 'The provider.';
comment on column private.provider_sync_costs.batch_size is 'Accounts one batched call covers (1: nothing batches).';
comment on column private.provider_sync_costs.calls_per_account is 'Calls per account outside the batched call.';
comment on column private.provider_sync_costs.calls_per_batch is 'Calls per batch (0 when nothing batches).';
comment on column private.provider_sync_costs.owner_calls_per_account is
'Of calls_per_account, those that need the account owner''s token.';
comment on column private.provider_sync_costs.note is 'Which calls these are.';
comment on column private.provider_sync_costs.updated_at is 'When the row was last written from a spec.';

create table private.provider_quota_usage (
    provider public.provider not null,
    scope text not null,
    period_start timestamptz not null,
    used numeric not null default 0 check (used >= 0),
    calls bigint not null default 0 check (calls >= 0),
    updated_at timestamptz not null default now(),
    primary key (provider, scope, period_start),
    foreign key (provider, scope) references private.provider_quotas (provider, scope) on delete cascade
);
comment on table private.provider_quota_usage is
'What was spent per scope and period: the budget of a daily scope (its day in reset_time_zone), the calls of a '
'rolling one per UTC day (information). Charged before each call, by every worker.';
comment on column private.provider_quota_usage.provider is 'The provider.';
comment on column private.provider_quota_usage.scope is 'The scope.';
comment on column private.provider_quota_usage.period_start is
'Start of the period: midnight in the scope''s zone (daily) or UTC (rolling).';
comment on column private.provider_quota_usage.used is 'Units (or calls) spent in the period.';
comment on column private.provider_quota_usage.calls is 'Calls made in the period.';
comment on column private.provider_quota_usage.updated_at is 'Last charge.';

create table private.provider_quota_state (
    provider public.provider primary key,
    blocked_until timestamptz,
    blocked_reason text check (char_length(blocked_reason) <= 500),
    blocked_at timestamptz,
    reported jsonb,
    reported_at timestamptz
);
comment on table private.provider_quota_state is
'A provider''s announced exhaustion (quotaExceeded, 429 + Retry-After): no worker calls it before blocked_until. '
'And the usage the provider last reported in its headers (information).';
comment on column private.provider_quota_state.provider is 'The provider.';
comment on column private.provider_quota_state.blocked_until is 'Nobody calls the provider before this.';
comment on column private.provider_quota_state.blocked_reason is 'What the provider said.';
comment on column private.provider_quota_state.blocked_at is 'When the block was recorded.';
comment on column private.provider_quota_state.reported is 'Usage the provider last reported (e.g. X-App-Usage).';
comment on column private.provider_quota_state.reported_at is 'When it was reported.';

create table private.account_quota_blocks (
    account_id uuid primary key references public.connected_accounts (id) on delete cascade,
    blocked_until timestamptz,
    reason text check (char_length(reason) <= 500),
    reported jsonb,
    reported_at timestamptz not null default now()
);
comment on table private.account_quota_blocks is
'Per-account limits a provider announced (Instagram Business Use Case usage, error 80002): the account''s syncs '
'wait until blocked_until.';
comment on column private.account_quota_blocks.account_id is 'The connected account.';
comment on column private.account_quota_blocks.blocked_until is 'The account''s calls wait until then.';
comment on column private.account_quota_blocks.reason is 'What the provider said.';
comment on column private.account_quota_blocks.reported is 'The usage the provider last reported for the account.';
comment on column private.account_quota_blocks.reported_at is 'When it was reported.';

-- ---------------------------------------------------------------------------------------------
-- batches: one call fetches the public data of up to batch_size accounts
-- ---------------------------------------------------------------------------------------------
create table private.sync_batches (
    id uuid primary key default extensions.gen_random_uuid(),
    provider public.provider not null,
    created_at timestamptz not null default now(),
    claimed_at timestamptz,
    fetched_at timestamptz,
    error text check (char_length(error) <= 500)
);
create index sync_batches_created_at_idx on private.sync_batches (created_at);
comment on table private.sync_batches is
'A group of a provider''s accounts planned together: the first of their syncs to run fetches the public data of '
'all of them in one call. Pruned after two days.';
comment on column private.sync_batches.id is 'Batch id.';
comment on column private.sync_batches.provider is 'The provider.';
comment on column private.sync_batches.created_at is 'When the planner made it.';
comment on column private.sync_batches.claimed_at is
'When a sync took the fetch on itself; another may take it over 30 seconds later.';
comment on column private.sync_batches.fetched_at is 'When the batched call answered.';
comment on column private.sync_batches.error is
'Why the batched call failed, if it did (each sync then fetches alone).';

create table private.sync_batch_items (
    batch_id uuid not null references private.sync_batches (id) on delete cascade,
    account_id uuid not null references public.connected_accounts (id) on delete cascade,
    external_id text not null check (char_length(external_id) between 1 and 200),
    found boolean,
    payload jsonb,
    primary key (batch_id, account_id)
);
create index sync_batch_items_account_id_idx on private.sync_batch_items (account_id);
comment on table private.sync_batch_items is
'One account of a batch and what the batched call returned for it (found false: the provider no longer has it).';
comment on column private.sync_batch_items.batch_id is 'The batch.';
comment on column private.sync_batch_items.account_id is 'The connected account.';
comment on column private.sync_batch_items.external_id is 'The account''s id at the provider, as sent.';
comment on column private.sync_batch_items.found is
'NULL until fetched; false when the provider returned nothing for it.';
comment on column private.sync_batch_items.payload is 'The provider''s object for this id (public data only).';

-- ---------------------------------------------------------------------------------------------
-- deferred syncs say why in sync_runs
-- ---------------------------------------------------------------------------------------------
alter table public.sync_runs
add column deferred_until timestamptz,
add column deferred_reason text check (char_length(deferred_reason) <= 500);
comment on column public.sync_runs.deferred_until is
'Set when the run was deferred by the provider quotas: it waits in the queue until then (kept once it ran).';
comment on column public.sync_runs.deferred_reason is
'Why it was deferred: the budget it did not fit, or what the provider announced.';

alter table private.provider_quotas enable row level security;
alter table private.provider_sync_costs enable row level security;
alter table private.provider_quota_usage enable row level security;
alter table private.provider_quota_state enable row level security;
alter table private.account_quota_blocks enable row level security;
alter table private.sync_batches enable row level security;
alter table private.sync_batch_items enable row level security;
revoke all on private.provider_quotas, private.provider_sync_costs, private.provider_quota_usage,
private.provider_quota_state, private.account_quota_blocks, private.sync_batches, private.sync_batch_items
from public, anon, authenticated;

-- ---------------------------------------------------------------------------------------------
-- the four providers' specs (arti/providers/*.py QUOTA; tests/unit/test_quota_specs.py keeps them equal)
-- ---------------------------------------------------------------------------------------------
insert into private.provider_quotas (
    provider, scope, unit, quota_limit, window_seconds, resets, reset_time_zone, applies_to, per_account,
    per_batch, lateness_seconds, source, note
) values
(
    'youtube', 'data_api_daily', 'units', 10000, 86400, 'daily', 'America/Los_Angeles', 'app', 0, 1, 1,
    'https://developers.google.com/youtube/v3/determine_quota_cost',
    'YouTube Data API: 10,000 units a day per project, reset at midnight Pacific Time; channels.list costs 1 unit '
    'whatever the number of ids (up to 50). Exhausted: 403 quotaExceeded.'
),
(
    'youtube', 'analytics_daily', 'calls', null, 86400, 'daily', 'America/Los_Angeles', 'app', 1, 0, 1,
    'https://developers.google.com/youtube/analytics/reference/reports/query',
    'YouTube Analytics API reports.query: its own per-project quota (Google Cloud console), not Data API units; one '
    'call per channel with the owner''s token. No number to plan with: counted, enforced by quotaExceeded.'
),
(
    'spotify', 'rolling_30s', 'calls', 180, 30, 'rolling', null, 'app', 1, 1, 1,
    'https://developer.spotify.com/documentation/web-api/concepts/rate-limits',
    'Calls per app in a rolling 30-second window; the number depends on the app''s mode and is not published: set '
    'quota_limit to your app''s. Exceeded: 429 with Retry-After (seconds).'
),
(
    'instagram', 'buc_per_account', 'calls', null, 86400, 'rolling', null, 'account', 5, 0, 1,
    'https://developers.facebook.com/docs/graph-api/overview/rate-limiting',
    'Business Use Case limit of the Instagram Platform: 4800 x impressions per account in a rolling 24 hours. Usage '
    '(percent) in X-Business-Use-Case-Usage with estimated_time_to_regain_access (minutes); error 80002.'
),
(
    'soundcloud', 'plays_rolling_24h', 'calls', 15000, 86400, 'rolling', null, 'app', 0, 0, 1,
    'https://developers.soundcloud.com/docs/api/rate-limits',
    '15,000 requests to playable streams (/tracks/:id/stream) per client id in any 24 hours; syncs never stream: they'
    ' spend nothing here. Exceeded: 429 with reset_time.'
),
(
    'soundcloud', 'api_rolling_24h', 'calls', null, 86400, 'rolling', null, 'app', 2, 0, 1,
    'https://developers.soundcloud.com/docs/api/rate-limits',
    'Every other call: SoundCloud documents no limit on the total number of calls a client application makes. '
    'Counted, for information.'
);

insert into private.provider_sync_costs (
    provider, batch_size, calls_per_account, calls_per_batch, owner_calls_per_account, note
) values
(
    'youtube', 50, 1, 1, 1,
    'channels.list?id= (public statistics) per 50 channels; reports.query per channel (owner).'
),
(
    'spotify', 50, 1, 1, 0,
    'GET /v1/artists?ids= per 50 artists; GET /v1/artists/{id}/albums per artist.'
),
(
    'instagram', 1, 5, 0, 5,
    'GET /{id} (counts), /{id}/insights reach (3 days), /{id}/insights total_value once per day (3 days).'
),
(
    'soundcloud', 1, 2, 0, 2,
    'GET /me, then GET /users/{id}/tracks (one page of 200).'
);

insert into private.provider_quota_state (provider)
select p.provider from unnest(enum_range(null::public.provider)) as p (provider);

-- ---------------------------------------------------------------------------------------------
-- the first design's token bucket is replaced by the scopes above
-- ---------------------------------------------------------------------------------------------
drop function private.take_rate_limit_token(public.provider);
drop function private.block_provider_until(public.provider, timestamptz);
drop table private.provider_rate_limits;

select cron.schedule('arti-prune-sync-batches', '17 3 * * *', 'select private.prune_sync_batches()');
