-- =============================================================================================
-- Migration: marketing data
-- Artists, campaigns, connected provider accounts, daily metrics (+ raw provider snapshots),
-- sync runs and per-user notifications. Every row carries org_id so RLS is one indexed test.
--   * A metric value of NULL means "not provided by the platform" (e.g. Spotify's Development
--     Mode hides followers since March 2026), never 0; `note` says why.
--   * Child rows reference their parent together with its org (composite foreign keys), so a
--     row can never point at another organization's artist or account.
--   * Metrics, snapshots and sync runs are written by the worker (service role), not by users.
--   * sync_runs and notifications are published to Realtime.
-- =============================================================================================

create type public.provider as enum ('spotify', 'youtube', 'instagram', 'soundcloud');
comment on type public.provider is 'A connected platform.';

create type public.account_status as enum ('active', 'needs_reauth', 'revoked', 'error');
comment on type public.account_status is
'active: syncing; needs_reauth: the provider refused our token; revoked: disconnected; error: repeated failures.';

create type public.campaign_status as enum ('draft', 'active', 'paused', 'completed', 'cancelled');
comment on type public.campaign_status is 'Lifecycle of a campaign.';

create type public.sync_status as enum ('queued', 'running', 'succeeded', 'failed');
comment on type public.sync_status is 'Lifecycle of a sync run.';

create type public.sync_trigger as enum ('schedule', 'manual', 'connect');
comment on type public.sync_trigger is 'What started a sync run: pg_cron, a user (request_sync) or a new connection.';

-- ---------------------------------------------------------------------------------------------
-- artists
-- ---------------------------------------------------------------------------------------------
create table public.artists (
    id uuid primary key default extensions.gen_random_uuid(),
    org_id uuid not null references public.organizations (id) on delete cascade,
    name text not null check (char_length(btrim(name)) between 1 and 200),
    image_url text check (image_url ~ '^https?://'),
    genres text[] not null default '{}',
    created_by uuid default auth.uid() references auth.users (id) on delete set null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (org_id, id)
);
create index artists_org_id_idx on public.artists (org_id);
comment on table public.artists is 'An artist managed by an organization.';
comment on column public.artists.id is 'Artist id.';
comment on column public.artists.org_id is 'Owning organization.';
comment on column public.artists.name is 'Artist name, 1-200 characters.';
comment on column public.artists.image_url is 'Picture URL.';
comment on column public.artists.genres is 'Genres, free text.';
comment on column public.artists.created_by is 'Who added the artist.';
comment on column public.artists.created_at is 'When the artist was added.';
comment on column public.artists.updated_at is 'When the artist last changed.';

-- ---------------------------------------------------------------------------------------------
-- campaigns
-- ---------------------------------------------------------------------------------------------
create table public.campaigns (
    id uuid primary key default extensions.gen_random_uuid(),
    org_id uuid not null references public.organizations (id) on delete cascade,
    artist_id uuid not null,
    name text not null check (char_length(btrim(name)) between 1 and 200),
    starts_on date not null,
    ends_on date,
    budget numeric(14, 2) check (budget >= 0),
    currency char(3) not null default 'USD' check (currency ~ '^[A-Z]{3}$'),
    goals jsonb not null default '{}' check (jsonb_typeof(goals) = 'object'),
    status public.campaign_status not null default 'draft',
    notes text check (char_length(notes) <= 10000),
    created_by uuid default auth.uid() references auth.users (id) on delete set null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check (ends_on is null or ends_on >= starts_on),
    foreign key (org_id, artist_id) references public.artists (org_id, id) on delete cascade
);
create index campaigns_org_id_idx on public.campaigns (org_id);
create index campaigns_artist_id_idx on public.campaigns (artist_id);
comment on table public.campaigns is 'A marketing campaign for an artist: dates, budget, goals, status.';
comment on column public.campaigns.id is 'Campaign id.';
comment on column public.campaigns.org_id is 'Owning organization (same as the artist''s).';
comment on column public.campaigns.artist_id is 'The artist promoted.';
comment on column public.campaigns.name is 'Campaign name.';
comment on column public.campaigns.starts_on is 'First day of the campaign.';
comment on column public.campaigns.ends_on is 'Last day, or null while open-ended.';
comment on column public.campaigns.budget is 'Budget in currency units.';
comment on column public.campaigns.currency is 'ISO 4217 currency code of the budget.';
comment on column public.campaigns.goals is 'Goals as a JSON object, e.g. {"spotify.followers": 15000}.';
comment on column public.campaigns.status is 'Lifecycle status.';
comment on column public.campaigns.notes is 'Free-text notes (also fed to the insights documents).';
comment on column public.campaigns.created_by is 'Who created the campaign.';
comment on column public.campaigns.created_at is 'When it was created.';
comment on column public.campaigns.updated_at is 'When it last changed.';

-- ---------------------------------------------------------------------------------------------
-- connected_accounts
-- ---------------------------------------------------------------------------------------------
create table public.connected_accounts (
    id uuid primary key default extensions.gen_random_uuid(),
    org_id uuid not null references public.organizations (id) on delete cascade,
    artist_id uuid not null,
    provider public.provider not null,
    external_id text not null check (char_length(external_id) between 1 and 200),
    display_name text,
    status public.account_status not null default 'active',
    last_synced_at timestamptz,
    next_sync_at timestamptz,
    last_error text,
    connected_by uuid default auth.uid() references auth.users (id) on delete set null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (org_id, id),
    unique (org_id, provider, external_id),
    foreign key (org_id, artist_id) references public.artists (org_id, id) on delete cascade
);
create index connected_accounts_artist_id_idx on public.connected_accounts (artist_id);
create index connected_accounts_due_idx on public.connected_accounts (next_sync_at) where status = 'active';
comment on table public.connected_accounts is
'A provider account (Spotify artist, YouTube channel, Instagram or SoundCloud profile) connected for an artist.';
comment on column public.connected_accounts.id is 'Connection id.';
comment on column public.connected_accounts.org_id is 'Owning organization (same as the artist''s).';
comment on column public.connected_accounts.artist_id is 'The artist this account belongs to.';
comment on column public.connected_accounts.provider is 'The platform.';
comment on column public.connected_accounts.external_id is 'The account''s id at the provider.';
comment on column public.connected_accounts.display_name is 'Name shown at the provider.';
comment on column public.connected_accounts.status is
'Connection health; set by the OAuth handlers and the sync worker.';
comment on column public.connected_accounts.last_synced_at is 'When the last successful sync finished.';
comment on column public.connected_accounts.next_sync_at is 'When the scheduler should sync it next.';
comment on column public.connected_accounts.last_error is 'Last sync or token error, for the UI.';
comment on column public.connected_accounts.connected_by is 'Who connected the account.';
comment on column public.connected_accounts.created_at is 'When it was connected.';
comment on column public.connected_accounts.updated_at is 'When it last changed.';

-- ---------------------------------------------------------------------------------------------
-- sync_runs
-- ---------------------------------------------------------------------------------------------
create table public.sync_runs (
    id uuid primary key default extensions.gen_random_uuid(),
    org_id uuid not null references public.organizations (id) on delete cascade,
    account_id uuid not null,
    status public.sync_status not null default 'queued',
    trigger public.sync_trigger not null,
    requested_by uuid references auth.users (id) on delete set null,
    queued_at timestamptz not null default now(),
    started_at timestamptz,
    finished_at timestamptz,
    days_fetched integer not null default 0 check (days_fetched >= 0),
    metrics_written integer not null default 0 check (metrics_written >= 0),
    attempts integer not null default 0 check (attempts >= 0),
    error text,
    foreign key (org_id, account_id) references public.connected_accounts (org_id, id) on delete cascade
);
create index sync_runs_org_id_idx on public.sync_runs (org_id, queued_at desc);
create index sync_runs_account_id_idx on public.sync_runs (account_id, queued_at desc);
comment on table public.sync_runs is 'One sync of one account: live status for the UI (published to Realtime).';
comment on column public.sync_runs.id is 'Sync run id.';
comment on column public.sync_runs.org_id is 'Owning organization.';
comment on column public.sync_runs.account_id is 'The account synced.';
comment on column public.sync_runs.status is 'queued, running, succeeded or failed.';
comment on column public.sync_runs.trigger is 'schedule, manual or connect.';
comment on column public.sync_runs.requested_by is 'The user who asked for a manual sync.';
comment on column public.sync_runs.queued_at is 'When it was queued.';
comment on column public.sync_runs.started_at is 'When a worker started it.';
comment on column public.sync_runs.finished_at is 'When it finished.';
comment on column public.sync_runs.days_fetched is 'Days of data fetched.';
comment on column public.sync_runs.metrics_written is 'Metric rows inserted or updated.';
comment on column public.sync_runs.attempts is 'Attempts made (retries included).';
comment on column public.sync_runs.error is 'Why it failed, for the UI.';

-- ---------------------------------------------------------------------------------------------
-- metrics: one row per (account, metric, day); idempotent upsert on the primary key
-- ---------------------------------------------------------------------------------------------
create table public.metrics (
    account_id uuid not null,
    -- Unbounded repetition plus a length check: the same rule as [a-z0-9_]{0,62}, 6x cheaper per row.
    metric text not null check (metric ~ '^[a-z][a-z0-9_]*$' and char_length(metric) <= 63),
    day date not null,
    org_id uuid not null,
    value numeric,
    note text,
    sync_run_id uuid,
    fetched_at timestamptz not null default now(),
    primary key (account_id, metric, day),
    foreign key (org_id, account_id) references public.connected_accounts (org_id, id) on delete cascade
);
create index metrics_org_id_idx on public.metrics (org_id, metric, day);
comment on table public.metrics is
'Daily metric values per connected account. NULL value = not provided by the platform (see note), never 0.';
comment on column public.metrics.account_id is 'The connected account.';
comment on column public.metrics.metric is 'Metric name, e.g. followers, popularity, views, plays_total.';
comment on column public.metrics.day is 'The day (UTC) the value describes.';
comment on column public.metrics.org_id is 'Owning organization, carried for RLS.';
comment on column public.metrics.value is 'The value, or NULL when the platform did not provide it.';
comment on column public.metrics.note is 'Why the value is NULL or approximate (e.g. "not provided", "rounded").';
comment on column public.metrics.sync_run_id is 'The sync run that wrote it last.';
comment on column public.metrics.fetched_at is 'When it was fetched.';

create table public.metric_snapshots (
    id bigint generated always as identity primary key,
    org_id uuid not null,
    account_id uuid not null,
    sync_run_id uuid references public.sync_runs (id) on delete set null,
    endpoint text not null,
    fetched_at timestamptz not null default now(),
    payload jsonb not null,
    foreign key (org_id, account_id) references public.connected_accounts (org_id, id) on delete cascade
);
create index metric_snapshots_org_id_idx on public.metric_snapshots (org_id);
create index metric_snapshots_account_id_idx on public.metric_snapshots (account_id, fetched_at desc);
comment on table public.metric_snapshots is 'Raw provider responses kept per sync, so metrics can be re-derived.';
comment on column public.metric_snapshots.id is 'Snapshot id.';
comment on column public.metric_snapshots.org_id is 'Owning organization.';
comment on column public.metric_snapshots.account_id is 'The connected account.';
comment on column public.metric_snapshots.sync_run_id is 'The sync run that fetched it.';
comment on column public.metric_snapshots.endpoint is 'Provider endpoint the payload came from.';
comment on column public.metric_snapshots.fetched_at is 'When it was fetched.';
comment on column public.metric_snapshots.payload is 'The provider''s JSON response, unchanged (never tokens).';

-- ---------------------------------------------------------------------------------------------
-- notifications (per user)
-- ---------------------------------------------------------------------------------------------
create table public.notifications (
    id uuid primary key default extensions.gen_random_uuid(),
    user_id uuid not null references auth.users (id) on delete cascade,
    org_id uuid references public.organizations (id) on delete cascade,
    kind text not null check (kind ~ '^[a-z_.]+$'),
    title text not null,
    body text,
    data jsonb not null default '{}',
    read_at timestamptz,
    created_at timestamptz not null default now()
);
create index notifications_user_id_idx on public.notifications (user_id, created_at desc);
create index notifications_org_id_idx on public.notifications (org_id);
comment on table public.notifications is 'In-app notifications for one user (published to Realtime).';
comment on column public.notifications.id is 'Notification id.';
comment on column public.notifications.user_id is 'Recipient.';
comment on column public.notifications.org_id is 'Organization it concerns, if any.';
comment on column public.notifications.kind is 'Event kind, e.g. sync.failed, anomaly.detected.';
comment on column public.notifications.title is 'Short title.';
comment on column public.notifications.body is 'Longer text.';
comment on column public.notifications.data is 'Structured details (ids for deep links).';
comment on column public.notifications.read_at is 'When the user read it; null while unread.';
comment on column public.notifications.created_at is 'When it was created.';

create trigger artists_touch before update on public.artists
for each row execute function private.touch_updated_at();
create trigger campaigns_touch before update on public.campaigns
for each row execute function private.touch_updated_at();
create trigger connected_accounts_touch before update on public.connected_accounts
for each row execute function private.touch_updated_at();

-- ---------------------------------------------------------------------------------------------
-- privileges: anon nothing; users write only what a policy below allows
-- ---------------------------------------------------------------------------------------------
revoke all on public.artists, public.campaigns, public.connected_accounts, public.sync_runs,
public.metrics, public.metric_snapshots, public.notifications from anon;
revoke truncate, references, trigger on public.artists, public.campaigns, public.connected_accounts
from authenticated;
revoke insert, update on public.artists, public.campaigns, public.connected_accounts from authenticated;
grant insert (org_id, name, image_url, genres) on public.artists to authenticated;
grant insert (org_id, artist_id, name, starts_on, ends_on, budget, currency, goals, status, notes)
on public.campaigns to authenticated;
grant insert (org_id, artist_id, provider, external_id, display_name) on public.connected_accounts to authenticated;
grant update (name, image_url, genres) on public.artists to authenticated;
grant update (artist_id, name, starts_on, ends_on, budget, currency, goals, status, notes)
on public.campaigns to authenticated;
grant update (display_name, artist_id) on public.connected_accounts to authenticated;
revoke insert, update, delete, truncate, references, trigger
on public.sync_runs, public.metrics, public.metric_snapshots from authenticated;
revoke insert, update, truncate, references, trigger on public.notifications from authenticated;
grant update (read_at) on public.notifications to authenticated;

-- ---------------------------------------------------------------------------------------------
-- RLS
-- ---------------------------------------------------------------------------------------------
alter table public.artists enable row level security;
alter table public.campaigns enable row level security;
alter table public.connected_accounts enable row level security;
alter table public.sync_runs enable row level security;
alter table public.metrics enable row level security;
alter table public.metric_snapshots enable row level security;
alter table public.notifications enable row level security;

create policy artists_select on public.artists for select to authenticated
using (org_id in (select private.my_org_ids()));
create policy artists_insert on public.artists for insert to authenticated
with check (org_id in (select private.org_ids_with_permission('artists.edit')));
create policy artists_update on public.artists for update to authenticated
using (org_id in (select private.org_ids_with_permission('artists.edit')))
with check (org_id in (select private.org_ids_with_permission('artists.edit')));
create policy artists_delete on public.artists for delete to authenticated
using (org_id in (select private.org_ids_with_permission('artists.edit')));

create policy campaigns_select on public.campaigns for select to authenticated
using (org_id in (select private.my_org_ids()));
create policy campaigns_insert on public.campaigns for insert to authenticated
with check (org_id in (select private.org_ids_with_permission('campaigns.edit')));
create policy campaigns_update on public.campaigns for update to authenticated
using (org_id in (select private.org_ids_with_permission('campaigns.edit')))
with check (org_id in (select private.org_ids_with_permission('campaigns.edit')));
create policy campaigns_delete on public.campaigns for delete to authenticated
using (org_id in (select private.org_ids_with_permission('campaigns.edit')));

create policy connected_accounts_select on public.connected_accounts for select to authenticated
using (org_id in (select private.my_org_ids()) or (select private.is_platform_admin()));
create policy connected_accounts_insert on public.connected_accounts for insert to authenticated
with check (org_id in (select private.org_ids_with_permission('accounts.connect')));
create policy connected_accounts_update on public.connected_accounts for update to authenticated
using (org_id in (select private.org_ids_with_permission('accounts.connect')))
with check (org_id in (select private.org_ids_with_permission('accounts.connect')));
create policy connected_accounts_delete on public.connected_accounts for delete to authenticated
using (org_id in (select private.org_ids_with_permission('accounts.connect')));

create policy sync_runs_select on public.sync_runs for select to authenticated
using (org_id in (select private.my_org_ids()) or (select private.is_platform_admin()));

create policy metrics_select on public.metrics for select to authenticated
using (org_id in (select private.my_org_ids()));

create policy metric_snapshots_select on public.metric_snapshots for select to authenticated
using (org_id in (select private.my_org_ids()));

create policy notifications_select on public.notifications for select to authenticated
using (user_id = (select auth.uid()));
create policy notifications_update on public.notifications for update to authenticated
using (user_id = (select auth.uid()))
with check (user_id = (select auth.uid()));
create policy notifications_delete on public.notifications for delete to authenticated
using (user_id = (select auth.uid()));

-- Realtime: clients subscribe to live sync progress and their notifications.
alter publication supabase_realtime add table public.sync_runs, public.notifications;

-- Only the system inserts here: the identity sequence is not the API roles' to advance.
revoke all on sequence public.metric_snapshots_id_seq from anon, authenticated;
