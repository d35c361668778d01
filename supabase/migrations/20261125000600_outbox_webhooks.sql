-- =============================================================================================
-- Migration: transactional outbox, signed webhooks and in-app notifications
--   * private.outbox: one row per business event (sync.failed, account.needs_reauth,
--     anomaly.detected, insight.created, member.invited, member.joined, member.role_changed),
--     written by triggers in the same transaction as the change: committed with it, or never.
--     Private, not public: events are the machine-facing record (payloads are re-sent verbatim,
--     possibly long after the change and with member emails) and users already see what concerns
--     them through webhook_deliveries (admins) and notifications (everyone). No grant, no policy.
--   * Fan-out in SQL, in that same transaction: a trigger on the outbox writes one
--     public.webhook_deliveries row per active endpoint subscribed to the event, defers one
--     Procrastinate job per delivery (queue webhooks, queueing lock webhook:<delivery id>) and
--     writes the in-app notifications of the members concerned. A rollback leaves no trace.
--   * public.webhook_endpoints: per-organization receivers (https only), managed through the
--     webhooks RPCs (webhooks.manage). Their signing secrets live in private.webhook_secrets and
--     are shown once, by create_webhook_endpoint / rotate_webhook_secret.
--   * public.webhook_deliveries / webhook_delivery_attempts: the delivery log, readable by the
--     organization's webhook managers. The job (jobs/webhooks.py) writes them.
--   * Settings (private.settings): webhooks.allow_loopback_http, webhooks.allowed_private_hosts,
--     webhooks.retry_horizon_seconds, webhooks.retry_base_seconds,
--     webhooks.retry_max_interval_seconds, webhooks.timeout_seconds.
-- =============================================================================================

insert into private.settings (key, value) values
('webhooks.allow_loopback_http', 'false'),
('webhooks.allowed_private_hosts', ''),
('webhooks.retry_horizon_seconds', '86400'),
('webhooks.retry_base_seconds', '30'),
('webhooks.retry_max_interval_seconds', '3600'),
('webhooks.timeout_seconds', '10')
on conflict (key) do nothing;

create function private.webhook_setting(name text, fallback text) returns text
language sql stable security definer set search_path = ''
as $$
    select coalesce((select s.value from private.settings as s where s.key = name), fallback)
$$;
comment on function private.webhook_setting(text, text) is
'The value of a private.settings key, or fallback when it is not set.';

-- ---------------------------------------------------------------------------------------------
-- event types (reference data the UI lists when subscribing an endpoint)
-- ---------------------------------------------------------------------------------------------
create table public.webhook_event_types (
    name text primary key check (name ~ '^[a-z_]+\.[a-z_]+$'),
    description text not null
);
comment on table public.webhook_event_types is
'Events an endpoint can subscribe to (also the kinds of in-app notifications). Changed only by migrations.';
comment on column public.webhook_event_types.name is 'Event type, e.g. sync.failed.';
comment on column public.webhook_event_types.description is 'When the event happens.';

insert into public.webhook_event_types (name, description) values
('sync.failed', 'A sync run of a connected account failed.'),
('account.needs_reauth', 'A provider refused our token: the account must be reconnected.'),
('anomaly.detected', 'An anomaly was detected in an account''s metrics.'),
('insight.created', 'A member''s question was answered.'),
('member.invited', 'Someone was invited to join the organization.'),
('member.joined', 'A user became a member of the organization.'),
('member.role_changed', 'A member''s role changed.');

-- ---------------------------------------------------------------------------------------------
-- the outbox
-- ---------------------------------------------------------------------------------------------
create table private.outbox (
    id uuid primary key default extensions.gen_random_uuid(),
    org_id uuid not null references public.organizations (id) on delete cascade,
    type text not null references public.webhook_event_types (name),
    payload jsonb not null check (jsonb_typeof(payload) = 'object'),
    actor_id uuid,
    created_at timestamptz not null default now()
);
create index outbox_org_id_idx on private.outbox (org_id, created_at desc);
comment on table private.outbox is
'Business events, written by triggers in the transaction of the change; the source of webhook deliveries '
'and notifications.';
comment on column private.outbox.id is 'Event id: stable, sent as X-Arti-Event-Id (receivers deduplicate on it).';
comment on column private.outbox.org_id is 'Organization the event belongs to.';
comment on column private.outbox.type is 'Event type (public.webhook_event_types).';
comment on column private.outbox.payload is 'Event data: ids and useful fields, never secrets (sent as "data").';
comment on column private.outbox.actor_id is 'User whose request caused the event; null for the system.';
comment on column private.outbox.created_at is 'When the event happened (its transaction''s time).';

-- ---------------------------------------------------------------------------------------------
-- endpoints and their secrets
-- ---------------------------------------------------------------------------------------------
create table public.webhook_endpoints (
    id uuid primary key default extensions.gen_random_uuid(),
    org_id uuid not null references public.organizations (id) on delete cascade,
    url text not null check (char_length(url) <= 2048),
    events text[] not null check (cardinality(events) >= 1),
    active boolean not null default true,
    description text check (char_length(description) <= 500),
    secret_hint text not null,
    secret_rotated_at timestamptz,
    created_by uuid references auth.users (id) on delete set null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (org_id, url),
    unique (org_id, id)
);
comment on table public.webhook_endpoints is
'Where an organization''s events are POSTed (n8n Webhook nodes included). Managed through the webhook RPCs.';
comment on column public.webhook_endpoints.id is 'Endpoint id.';
comment on column public.webhook_endpoints.org_id is 'Owning organization.';
comment on column public.webhook_endpoints.url is
'Receiver URL: https (http only to allowed development/private hosts).';
comment on column public.webhook_endpoints.events is 'Event types delivered to it (public.webhook_event_types).';
comment on column public.webhook_endpoints.active is 'False: nothing is delivered (pending deliveries fail).';
comment on column public.webhook_endpoints.description is 'What the endpoint is for.';
comment on column public.webhook_endpoints.secret_hint is
'The signing secret''s last characters, to tell secrets apart; the secret itself is never readable.';
comment on column public.webhook_endpoints.secret_rotated_at is 'When the secret was last rotated.';
comment on column public.webhook_endpoints.created_by is 'Who created it.';
comment on column public.webhook_endpoints.created_at is 'When it was created.';
comment on column public.webhook_endpoints.updated_at is 'When it last changed.';

create table private.webhook_secrets (
    endpoint_id uuid primary key references public.webhook_endpoints (id) on delete cascade,
    secret text not null,
    previous_secret text,
    previous_valid_until timestamptz,
    updated_at timestamptz not null default now()
);
comment on table private.webhook_secrets is
'HMAC-SHA256 signing secret of each endpoint (shown once by the RPCs, never granted to API roles).';
comment on column private.webhook_secrets.endpoint_id is 'The endpoint.';
comment on column private.webhook_secrets.secret is 'Current secret: whsec_ + 64 hex characters, used as UTF-8 bytes.';
comment on column private.webhook_secrets.previous_secret is
'Secret before the last rotation, still signing (second signature) until previous_valid_until.';
comment on column private.webhook_secrets.previous_valid_until is 'End of the rotation overlap.';
comment on column private.webhook_secrets.updated_at is 'When the secret was created or rotated.';

-- ---------------------------------------------------------------------------------------------
-- deliveries and attempts
-- ---------------------------------------------------------------------------------------------
create type public.webhook_delivery_status as enum ('pending', 'delivered', 'failed', 'dead');
comment on type public.webhook_delivery_status is
'pending: will be (re)tried; delivered: a 2xx was received; failed: refused without retry (4xx, redirect, '
'SSRF guard, endpoint disabled); dead: retries exhausted at the retry horizon.';

create table public.webhook_deliveries (
    id uuid primary key default extensions.gen_random_uuid(),
    org_id uuid not null,
    endpoint_id uuid not null,
    event_id uuid not null references private.outbox (id) on delete cascade,
    event_type text not null,
    status public.webhook_delivery_status not null default 'pending',
    attempts integer not null default 0 check (attempts >= 0),
    last_status_code integer,
    last_error text,
    next_attempt_at timestamptz default now(),
    retry_until timestamptz not null,
    delivered_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (endpoint_id, event_id),
    foreign key (org_id, endpoint_id) references public.webhook_endpoints (org_id, id) on delete cascade
);
create index webhook_deliveries_org_id_idx on public.webhook_deliveries (org_id, created_at desc);
create index webhook_deliveries_pending_idx on public.webhook_deliveries (next_attempt_at) where status = 'pending';
comment on table public.webhook_deliveries is
'One event to one endpoint: status, attempts and last result (readable with webhooks.manage).';
comment on column public.webhook_deliveries.id is
'Delivery id (sent as X-Arti-Delivery-Id; `arti webhooks replay` takes it).';
comment on column public.webhook_deliveries.org_id is 'Owning organization.';
comment on column public.webhook_deliveries.endpoint_id is 'The endpoint.';
comment on column public.webhook_deliveries.event_id is 'The event (same id on every attempt and replay).';
comment on column public.webhook_deliveries.event_type is 'The event type.';
comment on column public.webhook_deliveries.status is 'pending, delivered, failed or dead.';
comment on column public.webhook_deliveries.attempts is 'HTTP attempts made so far (replays included).';
comment on column public.webhook_deliveries.last_status_code is
'HTTP status of the last attempt; null when none was received.';
comment on column public.webhook_deliveries.last_error is 'Why the last attempt did not deliver.';
comment on column public.webhook_deliveries.next_attempt_at is 'When the next attempt is due (pending only).';
comment on column public.webhook_deliveries.retry_until is
'Retry horizon: no attempt is scheduled after it; the delivery is then dead.';
comment on column public.webhook_deliveries.delivered_at is 'When a 2xx was received.';
comment on column public.webhook_deliveries.created_at is 'When the delivery was created (with its event).';
comment on column public.webhook_deliveries.updated_at is 'When it last changed.';

create table public.webhook_delivery_attempts (
    id bigint generated always as identity primary key,
    delivery_id uuid not null references public.webhook_deliveries (id) on delete cascade,
    org_id uuid not null references public.organizations (id) on delete cascade,
    attempt integer not null check (attempt >= 1),
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    duration_ms integer,
    status_code integer,
    outcome text check (outcome in ('delivered', 'retry', 'failed', 'dead', 'refused', 'interrupted')),
    error text,
    response_excerpt text check (char_length(response_excerpt) <= 1000),
    unique (delivery_id, attempt)
);
create index webhook_delivery_attempts_org_id_idx on public.webhook_delivery_attempts (org_id);
comment on table public.webhook_delivery_attempts is
'Every HTTP attempt of every delivery (readable with webhooks.manage).';
comment on column public.webhook_delivery_attempts.id is 'Attempt id.';
comment on column public.webhook_delivery_attempts.delivery_id is 'The delivery.';
comment on column public.webhook_delivery_attempts.org_id is 'Owning organization.';
comment on column public.webhook_delivery_attempts.attempt is 'Attempt number within the delivery, from 1.';
comment on column public.webhook_delivery_attempts.started_at is 'When the attempt started.';
comment on column public.webhook_delivery_attempts.finished_at is 'When it ended; null while in flight.';
comment on column public.webhook_delivery_attempts.duration_ms is 'How long the HTTP exchange took.';
comment on column public.webhook_delivery_attempts.status_code is 'HTTP status received, if any.';
comment on column public.webhook_delivery_attempts.outcome is
'delivered, retry, failed, dead, refused (SSRF guard) or interrupted (the worker died during it).';
comment on column public.webhook_delivery_attempts.error is 'Network error, HTTP error or refusal reason.';
comment on column public.webhook_delivery_attempts.response_excerpt is 'First characters of the response body.';

create trigger webhook_endpoints_touch before update on public.webhook_endpoints
for each row execute function private.touch_updated_at();
create trigger webhook_deliveries_touch before update on public.webhook_deliveries
for each row execute function private.touch_updated_at();

-- ---------------------------------------------------------------------------------------------
-- privileges and RLS: read-only for webhook managers; every write goes through RPCs or the worker
-- ---------------------------------------------------------------------------------------------
alter table private.outbox enable row level security;
alter table private.webhook_secrets enable row level security;
revoke all on private.outbox, private.webhook_secrets from public, anon, authenticated;

revoke all on public.webhook_event_types, public.webhook_endpoints, public.webhook_deliveries,
public.webhook_delivery_attempts from anon;
revoke insert, update, delete, truncate, references, trigger on public.webhook_event_types,
public.webhook_endpoints, public.webhook_deliveries, public.webhook_delivery_attempts from authenticated;
revoke all on sequence public.webhook_delivery_attempts_id_seq from anon, authenticated;

alter table public.webhook_event_types enable row level security;
alter table public.webhook_endpoints enable row level security;
alter table public.webhook_deliveries enable row level security;
alter table public.webhook_delivery_attempts enable row level security;

create policy webhook_event_types_select on public.webhook_event_types for select to authenticated
using (true);
create policy webhook_endpoints_select on public.webhook_endpoints for select to authenticated
using (org_id in (select private.org_ids_with_permission('webhooks.manage')));
create policy webhook_deliveries_select on public.webhook_deliveries for select to authenticated
using (org_id in (select private.org_ids_with_permission('webhooks.manage')));
create policy webhook_delivery_attempts_select on public.webhook_delivery_attempts for select to authenticated
using (org_id in (select private.org_ids_with_permission('webhooks.manage')));

-- ---------------------------------------------------------------------------------------------
-- queueing deliveries
-- ---------------------------------------------------------------------------------------------
create function private.defer_webhook_deliveries(delivery_ids uuid[]) returns integer
language plpgsql volatile security definer set search_path = ''
as $$
begin
    if coalesce(cardinality(delivery_ids), 0) = 0 then
        return 0;
    end if;
    perform procrastinate.procrastinate_defer_jobs_v1(array(
        select row(
            'webhooks', 'deliver_webhook', 0, 'webhook:' || d.id::text, 'webhook:' || d.id::text,
            jsonb_build_object('delivery_id', d.id), null
        )::procrastinate.procrastinate_job_to_defer_v1
        from unnest(delivery_ids) as d (id)
    ));
    return cardinality(delivery_ids);
end
$$;
comment on function private.defer_webhook_deliveries(uuid[]) is
'Defers one deliver_webhook job per delivery (queue webhooks, lock and queueing lock webhook:<delivery id>).';

create function private.emit_event(target_org uuid, event_type text, payload jsonb) returns uuid
language plpgsql volatile security definer set search_path = ''
as $$
declare
    event_id uuid;
begin
    insert into private.outbox (org_id, type, payload, actor_id)
    values (target_org, event_type, jsonb_strip_nulls(payload), auth.uid())
    returning id into event_id;
    return event_id;
end
$$;
comment on function private.emit_event(uuid, text, jsonb) is
'Appends an event to the outbox (null fields dropped); its triggers fan it out. Returns the event id.';

create function private.fan_out_event() returns trigger
language plpgsql volatile security definer set search_path = ''
as $$
declare
    horizon double precision := private.webhook_setting('webhooks.retry_horizon_seconds', '86400')::double precision;
    created uuid[];
begin
    with inserted as (
        insert into public.webhook_deliveries (org_id, endpoint_id, event_id, event_type, retry_until)
        select e.org_id, e.id, new.id, new.type, now() + make_interval(secs => horizon)
        from public.webhook_endpoints as e
        where e.org_id = new.org_id and e.active and new.type = any(e.events)
        returning id
    )

    select array_agg(i.id) into created from inserted as i;
    perform private.defer_webhook_deliveries(created);
    return null;
end
$$;
comment on function private.fan_out_event() is
'Trigger on private.outbox: one webhook delivery (and its job) per active endpoint subscribed to the event.';

-- ---------------------------------------------------------------------------------------------
-- in-app notifications from events
-- ---------------------------------------------------------------------------------------------
create function private.notify_event() returns trigger
language plpgsql volatile security definer set search_path = ''
as $$
declare
    p jsonb := new.payload;
    wanted text;
    everyone boolean := false;
    extra uuid;
    excluded uuid[] := array[new.actor_id];
    title text;
    body text;
    artist_name text;
    member_name text;
begin
    select a.name into artist_name from public.artists as a where a.id = (p ->> 'artist_id')::uuid;
    select coalesce(pr.full_name, u.email) into member_name
    from auth.users as u left join public.profiles as pr on u.id = pr.id
    where u.id = (p ->> 'user_id')::uuid;
    case new.type
        when 'sync.failed' then
            wanted := 'accounts.connect';
            title := 'Sync failed: ' || coalesce(p ->> 'provider', 'account') || ' for '
                || coalesce(artist_name, 'an artist');
            body := p ->> 'error';
        when 'account.needs_reauth' then
            wanted := 'accounts.connect';
            title := 'Reconnect ' || coalesce(p ->> 'provider', 'account') || ' for '
                || coalesce(artist_name, 'an artist');
            body := p ->> 'reason';
        when 'anomaly.detected' then
            everyone := true;
            title := p ->> 'title';
            body := p ->> 'body';
        when 'insight.created' then
            everyone := true;
            title := 'New insight: ' || (p ->> 'title');
            body := p ->> 'question';
        when 'member.invited' then
            wanted := 'members.manage';
            title := (p ->> 'email') || ' was invited as ' || (p ->> 'role');
        when 'member.joined' then
            wanted := 'members.manage';
            excluded := excluded || (p ->> 'user_id')::uuid;
            title := coalesce(member_name, 'A new member') || ' joined as ' || (p ->> 'role');
        when 'member.role_changed' then
            wanted := 'members.manage';
            extra := (p ->> 'user_id')::uuid;
            title := coalesce(member_name, 'A member') || ' is now ' || (p ->> 'new_role')
                || ' (was ' || (p ->> 'old_role') || ')';
        else
            return null;
    end case;
    insert into public.notifications (user_id, org_id, kind, title, body, data)
    select m.user_id, new.org_id, new.type, left(coalesce(title, new.type), 300), left(body, 2000),
        p || jsonb_build_object('event_id', new.id)
    from public.memberships as m
    where
        m.org_id = new.org_id
        and m.user_id <> all(array_remove(excluded, null))
        and (
            everyone
            or m.user_id = extra
            or exists (
                select 1 from public.role_permissions as rp
                where rp.role = m.role and rp.permission = wanted
            )
        );
    return null;
end
$$;
comment on function private.notify_event() is
'Trigger on private.outbox: in-app notifications. sync.failed, account.needs_reauth: members with '
'accounts.connect; anomaly.detected, insight.created: every member; member.*: members with members.manage '
'(and the member whose role changed). Whoever caused the event is not notified.';

create function private.skip_repeated_notification() returns trigger
language plpgsql volatile security definer set search_path = ''
as $$
begin
    if new.data <> '{}'::jsonb and exists (
        select 1 from public.notifications as n
        where
            n.user_id = new.user_id and n.kind = new.kind and n.org_id is not distinct from new.org_id
            and n.read_at is null and n.created_at > now() - interval '10 minutes' and n.data @> new.data
    ) then
        return null;
    end if;
    return new;
end
$$;
comment on function private.skip_repeated_notification() is
'Trigger on public.notifications: drops a notification that adds nothing to an unread one of the same kind '
'from the last 10 minutes (the same event reported by two writers, e.g. the sync job and the outbox).';

create trigger notifications_skip_repeated before insert on public.notifications
for each row execute function private.skip_repeated_notification();

create trigger outbox_fan_out after insert on private.outbox
for each row execute function private.fan_out_event();
create trigger outbox_notify after insert on private.outbox
for each row execute function private.notify_event();

-- ---------------------------------------------------------------------------------------------
-- event sources: triggers in the transaction of the change
-- ---------------------------------------------------------------------------------------------
create function private.event_from_sync_run() returns trigger
language plpgsql volatile security definer set search_path = ''
as $$
declare
    account public.connected_accounts;
begin
    if new.status <> 'failed' or (tg_op = 'UPDATE' and old.status = 'failed') then
        return null;
    end if;
    select a.* into account from public.connected_accounts as a where a.id = new.account_id;
    perform private.emit_event(new.org_id, 'sync.failed', jsonb_build_object(
        'sync_run_id', new.id, 'account_id', new.account_id, 'artist_id', account.artist_id,
        'provider', account.provider, 'trigger', new.trigger, 'error', new.error, 'attempts', new.attempts,
        'queued_at', new.queued_at, 'finished_at', new.finished_at
    ));
    return null;
end
$$;
comment on function private.event_from_sync_run() is
'Trigger on public.sync_runs: a run becoming failed emits sync.failed.';

create function private.event_from_connected_account() returns trigger
language plpgsql volatile security definer set search_path = ''
as $$
begin
    if new.status <> 'needs_reauth' or (tg_op = 'UPDATE' and old.status = 'needs_reauth') then
        return null;
    end if;
    perform private.emit_event(new.org_id, 'account.needs_reauth', jsonb_build_object(
        'account_id', new.id, 'artist_id', new.artist_id, 'provider', new.provider,
        'display_name', new.display_name, 'reason', new.last_error
    ));
    return null;
end
$$;
comment on function private.event_from_connected_account() is
'Trigger on public.connected_accounts: an account becoming needs_reauth emits account.needs_reauth.';

create function private.event_from_insight() returns trigger
language plpgsql volatile security definer set search_path = ''
as $$
begin
    if new.kind = 'anomaly' then
        perform private.emit_event(new.org_id, 'anomaly.detected', jsonb_build_object(
            'insight_id', new.id, 'artist_id', new.artist_id, 'account_id', new.account_id,
            'metric', new.metric, 'day', new.day, 'title', new.title, 'body', new.body, 'evidence', new.evidence
        ));
    else
        perform private.emit_event(new.org_id, 'insight.created', jsonb_build_object(
            'insight_id', new.id, 'artist_id', new.artist_id, 'title', new.title, 'question', new.question,
            'answer_mode', new.answer_mode, 'created_by', new.created_by
        ));
    end if;
    return null;
end
$$;
comment on function private.event_from_insight() is
'Trigger on public.insights: an anomaly emits anomaly.detected, an answer insight.created.';

create function private.event_from_invitation() returns trigger
language plpgsql volatile security definer set search_path = ''
as $$
begin
    perform private.emit_event(new.org_id, 'member.invited', jsonb_build_object(
        'invitation_id', new.id, 'email', new.email, 'role', new.role, 'invited_by', new.invited_by,
        'expires_at', new.expires_at
    ));
    return null;
end
$$;
comment on function private.event_from_invitation() is
'Trigger on public.invitations: a new invitation emits member.invited (never its token).';

create function private.event_from_membership() returns trigger
language plpgsql volatile security definer set search_path = ''
as $$
declare
    member_email text;
begin
    select u.email into member_email from auth.users as u where u.id = new.user_id;
    if tg_op = 'INSERT' then
        perform private.emit_event(new.org_id, 'member.joined', jsonb_build_object(
            'user_id', new.user_id, 'email', member_email, 'role', new.role, 'invited_by', new.invited_by
        ));
    elsif old.role is distinct from new.role then
        perform private.emit_event(new.org_id, 'member.role_changed', jsonb_build_object(
            'user_id', new.user_id, 'email', member_email, 'old_role', old.role, 'new_role', new.role,
            'changed_by', auth.uid()
        ));
    end if;
    return null;
end
$$;
comment on function private.event_from_membership() is
'Trigger on public.memberships: a new member emits member.joined, a role change member.role_changed.';

create trigger sync_runs_event after insert or update of status on public.sync_runs
for each row execute function private.event_from_sync_run();
create trigger connected_accounts_event after insert or update of status on public.connected_accounts
for each row execute function private.event_from_connected_account();
create trigger insights_event after insert on public.insights
for each row execute function private.event_from_insight();
create trigger invitations_event after insert on public.invitations
for each row execute function private.event_from_invitation();
create trigger memberships_event after insert or update of role on public.memberships
for each row execute function private.event_from_membership();

-- ---------------------------------------------------------------------------------------------
-- replay and the safety sweep (used by `arti webhooks replay`, the replay RPC and the worker)
-- ---------------------------------------------------------------------------------------------
create function private.requeue_webhook_delivery(target_delivery uuid) returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
    delivery public.webhook_deliveries;
    endpoint_active boolean;
    job_id bigint;
    horizon double precision := private.webhook_setting('webhooks.retry_horizon_seconds', '86400')::double precision;
begin
    select d.* into delivery from public.webhook_deliveries as d where d.id = target_delivery for update;
    if delivery.id is null then
        raise exception 'webhook delivery % not found', target_delivery using errcode = 'P0002';
    end if;
    select e.active into endpoint_active from public.webhook_endpoints as e where e.id = delivery.endpoint_id;
    if not endpoint_active then
        raise exception 'the endpoint of this delivery is disabled; enable it before replaying'
        using errcode = '22023';
    end if;
    if exists (
        select 1 from procrastinate.procrastinate_jobs as j
        where j.lock = 'webhook:' || delivery.id::text and j.status = 'doing'
    ) then
        raise exception 'an attempt of this delivery is in progress; replay it when it has finished'
        using errcode = '23505';
    end if;
    update public.webhook_deliveries as d
    set
        status = 'pending', next_attempt_at = now(), delivered_at = null,
        retry_until = now() + make_interval(secs => horizon)
    where d.id = delivery.id;
    -- A job already waiting (e.g. for its next retry) is brought forward instead of duplicated.
    update procrastinate.procrastinate_jobs as j set scheduled_at = now()
    where j.queueing_lock = 'webhook:' || delivery.id::text and j.status = 'todo'
    returning j.id into job_id;
    if job_id is null then
        perform private.defer_webhook_deliveries(array[delivery.id]);
    end if;
    return jsonb_build_object(
        'delivery_id', delivery.id, 'event_id', delivery.event_id, 'status', 'pending',
        'previous_status', delivery.status, 'attempts', delivery.attempts
    );
end
$$;
comment on function private.requeue_webhook_delivery(uuid) is
'Queues a new attempt of a delivery (same event id), whatever its status; the retry horizon restarts now. '
'Errors: P0002 unknown, 22023 endpoint disabled, 23505 an attempt is running.';

create function private.sweep_webhook_deliveries() returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
    orphans uuid[];
    expired integer;
begin
    -- Pending deliveries whose horizon passed without a job left to try them: dead.
    update public.webhook_deliveries as d
    set status = 'dead', next_attempt_at = null,
        last_error = coalesce(d.last_error || '; ', '') || 'retry horizon passed'
    where
        d.status = 'pending' and d.retry_until < now()
        and not exists (
            select 1 from procrastinate.procrastinate_jobs as j
            where j.lock = 'webhook:' || d.id::text and j.status in ('todo', 'doing')
        );
    get diagnostics expired = row_count;
    -- Pending deliveries whose job was lost (failed on an unexpected error, deleted): queued again.
    select array_agg(d.id) into orphans
    from public.webhook_deliveries as d
    where
        d.status = 'pending' and d.next_attempt_at < now() - interval '1 minute'
        and not exists (
            select 1 from procrastinate.procrastinate_jobs as j
            where j.lock = 'webhook:' || d.id::text and j.status in ('todo', 'doing')
        );
    return expired + private.defer_webhook_deliveries(orphans);
end
$$;
comment on function private.sweep_webhook_deliveries() is
'Safety net run by the worker: pending deliveries without a job are re-queued, or marked dead past their '
'horizon. Returns how many rows it changed.';

revoke execute on all functions in schema private from public;
