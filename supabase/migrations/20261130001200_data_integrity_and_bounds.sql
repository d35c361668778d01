-- =============================================================================================
-- Migration: data_integrity_and_bounds
-- What the schema itself now guarantees (issue 16 items 1, 4 and 5):
--   * No row points into another organization. Every foreign key from a table that has org_id to
--     another table that has org_id includes org_id on both sides: (org_id, x) -> (org_id, id).
--     Seven were single-column: insights.artist_id and .account_id, documents.artist_id,
--     metric_snapshots.sync_run_id, private.oauth_states.artist_id, webhook_deliveries.event_id and
--     webhook_delivery_attempts.delivery_id. As an analyst of org B, an insight pointing at org A's
--     artist was accepted (23503 for an unknown id, success for a real one: an existence oracle;
--     A's id then travelled in B's notifications and webhooks, and A deleting its artist deleted
--     B's rows). The parents referenced this way get a unique (org_id, id) where they had none
--     (sync_runs, private.outbox, webhook_deliveries). Existing rows pointing across
--     organizations lose the reference (nullable columns) or are deleted (private OAuth states,
--     webhook deliveries and attempts, written by the system only). A catalog test fails on any
--     foreign key that breaks the rule (tests/integration/test_data_integrity.py).
--   * Users write insights only through POST /functions/v1/insights/ask. Direct inserts over REST
--     were unlimited and each one fanned out an event, notifications and webhook deliveries:
--     INSERT on public.insights is revoked from authenticated and its insert policy dropped. The
--     handler stores the answer with private.record_answer (sql_functions/insights), which checks
--     the caller, insights.ask, the artist and the citations in the organization and bounds every
--     input; the handler's per-user and per-organization rate limits bound how often.
--   * No DELETE reaches Realtime. postgres_changes cannot apply RLS to a deleted row, so it sent
--     every DELETE of sync_runs, notifications and insights (primary key only) to every subscriber
--     of the table, whatever their organization. The supabase_realtime publication now publishes
--     inserts and updates only (Realtime reads pubinsert/pubupdate/pubdelete to choose the actions
--     it decodes), so this holds for every table published now or later.
--   * Dashboard reads as a member cost about what they cost the service role (bench dashboard_rls). The
--     marketing-data select policies read the caller's organizations once per statement as an array:
--     `coalesce(org_id = any((select private.my_org_ids_array())::uuid[]), false)`, an InitPlan calling
--     a PL/pgSQL function that returns uuid[], where `org_id in (select private.my_org_ids())` built a
--     hashed subplan over a set-returning function. The coalesce (the array never holds NULL) keeps the
--     condition out of index scans: bare, `org_id = any(...)` is an index condition, and the planner then
--     ANDed the metrics org_id index over the caller's whole organization with the account's own key
--     (artist_overview for a p99-size organization: 3x slower). metrics_summary also joins the accounts
--     of its organization only (sql_functions/dashboards). The documents policy (retrieval, tuned
--     separately) and the tenancy tables keep the set-returning helper.
-- =============================================================================================

-- ---------------------------------------------------------------------------------------------
-- rows that point across organizations (none are written by the application; cleaned before the keys)
-- ---------------------------------------------------------------------------------------------
update public.insights as i
set artist_id = null
where
    i.artist_id is not null
    and not exists (
        select 1 from public.artists as a
        where a.id = i.artist_id and a.org_id = i.org_id
    );

update public.insights as i
set account_id = null
where
    i.account_id is not null
    and not exists (
        select 1 from public.connected_accounts as a
        where a.id = i.account_id and a.org_id = i.org_id
    );

update public.documents as d
set artist_id = null
where
    d.artist_id is not null
    and not exists (
        select 1 from public.artists as a
        where a.id = d.artist_id and a.org_id = d.org_id
    );

update public.metric_snapshots as s
set sync_run_id = null
where
    s.sync_run_id is not null
    and not exists (
        select 1 from public.sync_runs as r
        where r.id = s.sync_run_id and r.org_id = s.org_id
    );

delete from private.oauth_states as s
where not exists (
        select 1 from public.artists as a
        where a.id = s.artist_id and a.org_id = s.org_id
    );

delete from public.webhook_deliveries as d
where not exists (
        select 1 from private.outbox as e
        where e.id = d.event_id and e.org_id = d.org_id
    );

delete from public.webhook_delivery_attempts as t
where not exists (
        select 1 from public.webhook_deliveries as d
        where d.id = t.delivery_id and d.org_id = t.org_id
    );

-- ---------------------------------------------------------------------------------------------
-- parents referenced together with their organization
-- ---------------------------------------------------------------------------------------------
alter table public.sync_runs add constraint sync_runs_org_id_id_key unique (org_id, id);
comment on constraint sync_runs_org_id_id_key on public.sync_runs is
'Target of composite foreign keys (org_id, sync_run_id): a row can only point at a sync run of its own organization.';

alter table private.outbox add constraint outbox_org_id_id_key unique (org_id, id);
comment on constraint outbox_org_id_id_key on private.outbox is
'Target of webhook_deliveries (org_id, event_id): a delivery carries only an event of its own organization.';

alter table public.webhook_deliveries add constraint webhook_deliveries_org_id_id_key unique (org_id, id);
comment on constraint webhook_deliveries_org_id_id_key on public.webhook_deliveries is
'Target of webhook_delivery_attempts (org_id, delivery_id): an attempt belongs to a delivery of its organization.';

-- ---------------------------------------------------------------------------------------------
-- composite foreign keys: (org_id, x) -> (org_id, id)
-- ---------------------------------------------------------------------------------------------
alter table public.insights
drop constraint insights_artist_id_fkey,
drop constraint insights_account_id_fkey,
add constraint insights_org_id_artist_id_fkey foreign key (org_id, artist_id)
references public.artists (org_id, id) on delete cascade,
add constraint insights_org_id_account_id_fkey foreign key (org_id, account_id)
references public.connected_accounts (org_id, id) on delete cascade;
comment on constraint insights_org_id_artist_id_fkey on public.insights is
'The artist concerned is one of the insight''s organization (deleting it deletes its insights, never another org''s).';
comment on constraint insights_org_id_account_id_fkey on public.insights is
'The account concerned is one of the insight''s organization.';

alter table public.documents
drop constraint documents_artist_id_fkey,
add constraint documents_org_id_artist_id_fkey foreign key (org_id, artist_id)
references public.artists (org_id, id) on delete cascade;
comment on constraint documents_org_id_artist_id_fkey on public.documents is
'The artist a chunk is about is one of the chunk''s organization.';

-- Only sync_run_id is cleared when the run goes: org_id stays (PostgreSQL 15 column list).
alter table public.metric_snapshots
drop constraint metric_snapshots_sync_run_id_fkey,
add constraint metric_snapshots_org_id_sync_run_id_fkey foreign key (org_id, sync_run_id)
references public.sync_runs (org_id, id) on delete set null (sync_run_id);
comment on constraint metric_snapshots_org_id_sync_run_id_fkey on public.metric_snapshots is
'The sync run that fetched a snapshot is one of its organization; deleting the run clears sync_run_id only.';

alter table private.oauth_states
drop constraint oauth_states_artist_id_fkey,
add constraint oauth_states_org_id_artist_id_fkey foreign key (org_id, artist_id)
references public.artists (org_id, id) on delete cascade;
comment on constraint oauth_states_org_id_artist_id_fkey on private.oauth_states is
'An OAuth flow connects an account for an artist of the flow''s organization.';

alter table public.webhook_deliveries
drop constraint webhook_deliveries_event_id_fkey,
add constraint webhook_deliveries_org_id_event_id_fkey foreign key (org_id, event_id)
references private.outbox (org_id, id) on delete cascade;
comment on constraint webhook_deliveries_org_id_event_id_fkey on public.webhook_deliveries is
'A delivery sends an event of its own organization.';

alter table public.webhook_delivery_attempts
drop constraint webhook_delivery_attempts_delivery_id_fkey,
add constraint webhook_delivery_attempts_org_id_delivery_id_fkey foreign key (org_id, delivery_id)
references public.webhook_deliveries (org_id, id) on delete cascade;
comment on constraint webhook_delivery_attempts_org_id_delivery_id_fkey on public.webhook_delivery_attempts is
'An attempt belongs to a delivery of its own organization.';

-- ---------------------------------------------------------------------------------------------
-- insights: written by the system and by /insights/ask (private.record_answer), never directly by users
-- ---------------------------------------------------------------------------------------------
drop policy insights_insert on public.insights;
revoke insert on public.insights from authenticated;
comment on table public.insights is
'Anomalies and answers for an organization (published to Realtime). Users read them; answers are written '
'only through POST /functions/v1/insights/ask (rate-limited), anomalies by the sync jobs.';

-- ---------------------------------------------------------------------------------------------
-- Realtime: inserts and updates only
-- ---------------------------------------------------------------------------------------------
alter publication supabase_realtime set (publish = 'insert, update');
comment on publication supabase_realtime is
'Realtime postgres_changes: inserts and updates only. A DELETE cannot be checked against RLS (the row is gone), '
'so Realtime would send its primary key to every subscriber of the table; deletions are read by refetching.';

-- ---------------------------------------------------------------------------------------------
-- policies: the caller's organizations as an array, evaluated once per statement, never an index condition
-- ---------------------------------------------------------------------------------------------
create function private.my_org_ids_array() returns uuid[]
language plpgsql stable security definer set search_path = ''
as $$
begin
    return array(select m.org_id from public.memberships as m where m.user_id = auth.uid());
end
$$;
comment on function private.my_org_ids_array() is
'Organizations the caller belongs to, as an array (empty without a user). Policies call it once per statement: '
'coalesce(org_id = any((select private.my_org_ids_array())::uuid[]), false).';
revoke all on function private.my_org_ids_array() from public, anon;
grant execute on function private.my_org_ids_array() to authenticated, service_role;

alter policy artists_select on public.artists
using (coalesce(org_id = any((select private.my_org_ids_array())::uuid[]), false));
alter policy campaigns_select on public.campaigns
using (coalesce(org_id = any((select private.my_org_ids_array())::uuid[]), false));
alter policy connected_accounts_select on public.connected_accounts
using (
    coalesce(org_id = any((select private.my_org_ids_array())::uuid[]), false)
    or (select private.is_platform_admin())
);
alter policy sync_runs_select on public.sync_runs
using (
    coalesce(org_id = any((select private.my_org_ids_array())::uuid[]), false)
    or (select private.is_platform_admin())
);
alter policy metrics_select on public.metrics
using (coalesce(org_id = any((select private.my_org_ids_array())::uuid[]), false));
alter policy metric_snapshots_select on public.metric_snapshots
using (coalesce(org_id = any((select private.my_org_ids_array())::uuid[]), false));
alter policy insights_select on public.insights
using (coalesce(org_id = any((select private.my_org_ids_array())::uuid[]), false));
