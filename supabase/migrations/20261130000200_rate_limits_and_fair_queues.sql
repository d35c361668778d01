-- =============================================================================================
-- Migration: rate limits on the expensive routes, one drain job per webhook endpoint, syncs first
--   * Found by an attack pass: 200 calls to POST /functions/v1/insights/ask by one analyst,
--     against an organization with 7 webhook endpoints, made 200 insights, 800 notifications,
--     1,400 webhook deliveries and 1,400 Procrastinate jobs in 1.6 s, and a manual sync queued
--     after them waited more than 60 s.
--   * private.request_rate_limits: one GCRA bucket (its theoretical arrival time) per route and
--     user, and per route and organization, shared by every handler process.
--     private.take_rate_limit(route, user, org) admits a call or says how long to wait, in one
--     call that locks the buckets (organization first, then user). The handlers call it on their
--     service connection once the caller is authenticated and allowed, before any expensive work,
--     and answer 429 with Retry-After. Limits are private.settings keys, read at every call:
--     rate_limits.<route>.per_user, .per_org (calls per window; 0 = no limit) and .window_seconds,
--     for insights_ask (10 and 60 a minute) and oauth_start (10 and 30 a minute). A bucket whose
--     arrival time has passed is full again and its row carries nothing: pg_cron deletes those
--     every 10 minutes (`arti-prune-request-rate-limits`).
--   * Webhooks: deliveries are still one row per event and endpoint, written in the event's
--     transaction, but jobs are one per endpoint: private.ensure_webhook_drain(endpoint) keeps
--     at most one waiting drain_webhook_endpoint job per endpoint (queueing lock
--     webhook-endpoint:<id>), scheduled for when the endpoint's oldest pending delivery is due.
--     The job (jobs/webhook_drain.py) sends that endpoint's due deliveries oldest first; a
--     delivery to be retried pauses its endpoint until its next attempt (backoff or Retry-After),
--     so a failing receiver gets one request per backoff step instead of one per delivery.
--     How a producer and a finishing drain cannot miss each other is written on the function.
--     Replay, the sweep and delete_webhook_endpoint work on endpoint jobs; waiting per-delivery
--     jobs of the old design are replaced by drain jobs here.
--   * Notifications: an answer (insight.created) no longer notifies every member; the asker
--     already has it in the response, and the event still goes to webhooks.
--   * Syncs are deferred with priority 10 (other jobs 0): a worker serving several queues takes
--     them first, and `arti worker` reserves workers for the sync queue (jobs/worker.py).
-- =============================================================================================

-- ---------------------------------------------------------------------------------------------
-- rate limits of the handlers' expensive routes
-- ---------------------------------------------------------------------------------------------
insert into private.settings (key, value) values
('rate_limits.insights_ask.per_user', '10'),
('rate_limits.insights_ask.per_org', '60'),
('rate_limits.insights_ask.window_seconds', '60'),
('rate_limits.oauth_start.per_user', '10'),
('rate_limits.oauth_start.per_org', '30'),
('rate_limits.oauth_start.window_seconds', '60')
on conflict (key) do nothing;

create table private.request_rate_limits (
    bucket text primary key check (char_length(bucket) <= 200),
    tat timestamptz not null
);
comment on table private.request_rate_limits is
'GCRA buckets of the handlers'' rate limits, one per route and user or organization (take_rate_limit). '
'A row whose tat has passed is a full bucket: prune_request_rate_limits deletes it.';
comment on column private.request_rate_limits.bucket is '<route>:user:<user id> or <route>:org:<organization id>.';
comment on column private.request_rate_limits.tat is
'Theoretical arrival time: the bucket admits a call while tat + one emission interval <= now + window.';

alter table private.request_rate_limits enable row level security;
revoke all on private.request_rate_limits from public, anon, authenticated;

create function private.rate_limit_setting(name text, fallback integer) returns integer
language sql stable set search_path = ''
as $$
    select coalesce(
        (
            select case when s.value ~ '^\s*[0-9]{1,9}\s*$' then trim(s.value)::integer end
            from private.settings as s where s.key = 'rate_limits.' || name
        ),
        fallback
    )
$$;
comment on function private.rate_limit_setting(text, integer) is
'The integer value of private.settings key rate_limits.<name>; fallback when it is missing or not a number.';

create function private.take_rate_limit(route text, user_id uuid, org_id uuid default null) returns jsonb
language plpgsql volatile set search_path = ''
as $$
declare
    period double precision := greatest(1, private.rate_limit_setting(route || '.window_seconds', 60));
    scopes text[] := array['organization', 'user'];
    caps integer[] := array[
        private.rate_limit_setting(route || '.per_org', 60), private.rate_limit_setting(route || '.per_user', 10)
    ];
    buckets text[] := array[route || ':org:' || org_id::text, route || ':user:' || user_id::text];
    stored timestamptz[] := array[null, null]::timestamptz [];
    next_tat timestamptz[] := array[null, null]::timestamptz [];
    got timestamptz;
    now_ts timestamptz;
    wait double precision := 0;
    refused integer;
begin
    if route is null or route !~ '^[a-z][a-z_]{0,40}$' or user_id is null then
        raise exception 'take_rate_limit needs a route name and a user' using errcode = '22023';
    end if;
    -- Lock (and read) the buckets, the organization's first: every caller takes them in this
    -- order, so concurrent callers queue instead of deadlocking.
    for i in 1..2 loop
        if buckets[i] is not null and caps[i] > 0 then
            insert into private.request_rate_limits as r (bucket, tat) values (buckets[i], '-infinity')
            on conflict (bucket) do update set tat = r.tat
            returning r.tat into got;
            stored[i] := got;
        end if;
    end loop;
    now_ts := clock_timestamp();
    for i in 1..2 loop
        if stored[i] is not null then
            next_tat[i] := greatest(stored[i], now_ts) + make_interval(secs => period / caps[i]);
            if next_tat[i] > now_ts + make_interval(secs => period)
                and extract(epoch from next_tat[i] - now_ts) - period > wait then
                refused := i;
                wait := extract(epoch from next_tat[i] - now_ts) - period;
            end if;
        end if;
    end loop;
    if refused is not null then
        return jsonb_build_object(
            'allowed', false, 'scope', scopes[refused], 'limit', caps[refused], 'window_seconds', period,
            'retry_after', wait
        );
    end if;
    update private.request_rate_limits as r set tat = n.tat
    from unnest(buckets, next_tat) as n (bucket, tat)
    where r.bucket = n.bucket and n.tat is not null;
    return jsonb_build_object('allowed', true);
end
$$;
comment on function private.take_rate_limit(text, uuid, uuid) is
'Admits one call of route for user_id and org_id (null: no organization limit) if both buckets allow it, and '
'records it in both; otherwise records nothing and returns {"allowed": false, "scope", "limit", '
'"window_seconds", "retry_after": seconds}. Limits from private.settings rate_limits.<route>.*. Called by the '
'handlers'' service connection after authentication and the permission check. Errors: 22023 bad arguments.';

create function private.prune_request_rate_limits() returns integer
language plpgsql volatile set search_path = ''
as $$
declare
    removed integer;
begin
    delete from private.request_rate_limits as r where r.tat < now();
    get diagnostics removed = row_count;
    return removed;
end
$$;
comment on function private.prune_request_rate_limits() is
'Deletes rate-limit buckets that are full again (their tat has passed); returns how many. pg_cron, every 10 min.';

select cron.schedule('arti-prune-request-rate-limits', '*/10 * * * *', 'select private.prune_request_rate_limits()');

-- ---------------------------------------------------------------------------------------------
-- webhooks: one drain job per endpoint
-- ---------------------------------------------------------------------------------------------
create index webhook_deliveries_endpoint_queue_idx on public.webhook_deliveries (endpoint_id, created_at, id)
where status = 'pending';
comment on index public.webhook_deliveries_endpoint_queue_idx is
'Each endpoint''s pending deliveries, oldest first: the drain job''s queue.';

create function private.ensure_webhook_drain(target_endpoint uuid, closing boolean default false)
returns timestamptz
language plpgsql volatile security definer set search_path = ''
as $$
declare
    queue_key text := 'webhook-endpoint:' || target_endpoint::text;
    head public.webhook_deliveries;
    run_at timestamptz;
    contended boolean := false;
    waiting bigint;
    waiting_at timestamptz;
begin
    -- How a writer of deliveries and a finishing drain never miss each other, without a writer
    -- ever waiting for another writer (that could deadlock the business transactions that write
    -- events):
    --   * a writer holds a key-share lock on the endpoint from the moment it writes a delivery
    --     (the delivery's foreign key takes one too) until it commits;
    --   * a drain that has stopped sending calls this with closing = true, which tries to lock
    --     the endpoint FOR UPDATE without waiting. Success: no writer is between its delivery and
    --     its commit, and writers coming later see this drain running and queue their own job.
    --     Failure: a writer may be relying on this drain (it saw the job waiting before it ran),
    --     so a next drain is queued even if nothing is visible yet.
    if closing then
        begin
            perform 1 from public.webhook_endpoints as e where e.id = target_endpoint for update nowait;
        exception when lock_not_available then
            contended := true;
        end;
    else
        perform 1 from public.webhook_endpoints as e where e.id = target_endpoint for key share;
    end if;
    if not contended and not found then
        return null;
    end if;
    select d.* into head
    from public.webhook_deliveries as d
    where d.endpoint_id = target_endpoint and d.status = 'pending'
    order by d.created_at, d.id
    limit 1;
    if head.id is not null then
        -- The oldest pending delivery decides: due now, or the endpoint is paused until its retry.
        run_at := case when head.next_attempt_at > clock_timestamp() then head.next_attempt_at end;
    elsif contended then
        run_at := clock_timestamp() + interval '1 second';
    else
        return null;
    end if;
    select j.id, j.scheduled_at into waiting, waiting_at
    from procrastinate.procrastinate_jobs as j
    where j.queueing_lock = queue_key and j.status = 'todo';
    if waiting is not null then
        -- Re-scheduled only if nobody else holds the job row (a worker taking it, another writer).
        if waiting_at is distinct from run_at and (head.id is not null or waiting_at > run_at) then
            update procrastinate.procrastinate_jobs as j set scheduled_at = run_at
            where j.id = (
                select l.id from procrastinate.procrastinate_jobs as l
                where l.id = waiting and l.status = 'todo'
                for update skip locked
            );
        end if;
    elsif pg_try_advisory_xact_lock(hashtextextended(queue_key, 0)) then
        -- Only one transaction at a time inserts the endpoint's job, so the queueing lock's unique
        -- index never makes this one wait for another's commit.
        begin
            perform procrastinate.procrastinate_defer_jobs_v1(array[row(
                'webhooks', 'drain_webhook_endpoint', 0, queue_key, queue_key,
                jsonb_build_object('endpoint_id', target_endpoint), run_at
            )::procrastinate.procrastinate_job_to_defer_v1]);
        exception when unique_violation then
            null; -- a job was queued and committed meanwhile: it will run
        end;
    end if;
    -- Otherwise another transaction is inserting the endpoint's job right now and this one relies
    -- on it; should that transaction roll back, sweep_webhook_deliveries queues one.
    return coalesce(run_at, clock_timestamp());
end
$$;
comment on function private.ensure_webhook_drain(uuid, boolean) is
'Makes sure the endpoint''s pending deliveries have a drain_webhook_endpoint job: at most one waiting per '
'endpoint (queueing lock and lock webhook-endpoint:<id>), scheduled when the oldest pending delivery is due. '
'closing = true is the call of a drain that stopped sending (see the function body). Returns when the job '
'runs, or null when nothing is pending. Waits at most for a finishing drain''s or an endpoint update''s short lock.';

create or replace function private.defer_webhook_deliveries(delivery_ids uuid[]) returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
    endpoint uuid;
begin
    if coalesce(cardinality(delivery_ids), 0) = 0 then
        return 0;
    end if;
    for endpoint in
        select distinct d.endpoint_id from public.webhook_deliveries as d where d.id = any(delivery_ids)
        order by d.endpoint_id
    loop
        perform private.ensure_webhook_drain(endpoint);
    end loop;
    return cardinality(delivery_ids);
end
$$;
comment on function private.defer_webhook_deliveries(uuid[]) is
'Queues the deliveries: makes sure each of their endpoints has a drain job (ensure_webhook_drain). Returns how '
'many deliveries were given.';

create or replace function private.requeue_webhook_delivery(target_delivery uuid) returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
    delivery public.webhook_deliveries;
    endpoint_active boolean;
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
    -- An attempt is in progress while the delivery is pending, one of its attempts is still open
    -- and its endpoint's drain job runs (an open attempt without a running drain was interrupted).
    if delivery.status = 'pending'
        and exists (
            select 1 from public.webhook_delivery_attempts as a
            where a.delivery_id = delivery.id and a.outcome is null
        )
        and exists (
            select 1 from procrastinate.procrastinate_jobs as j
            where j.queueing_lock = 'webhook-endpoint:' || delivery.endpoint_id::text and j.status = 'doing'
        ) then
        raise exception 'an attempt of this delivery is in progress; replay it when it has finished'
        using errcode = '23505';
    end if;
    update public.webhook_deliveries as d
    set
        status = 'pending', next_attempt_at = now(), delivered_at = null,
        retry_until = now() + make_interval(secs => horizon)
    where d.id = delivery.id;
    perform private.ensure_webhook_drain(delivery.endpoint_id);
    return jsonb_build_object(
        'delivery_id', delivery.id, 'event_id', delivery.event_id, 'status', 'pending',
        'previous_status', delivery.status, 'attempts', delivery.attempts
    );
end
$$;
comment on function private.requeue_webhook_delivery(uuid) is
'Queues a new attempt of a delivery (same event id), whatever its status; the retry horizon restarts now and '
'its endpoint''s drain job is brought forward if the delivery is the oldest pending. Errors: P0002 unknown, '
'22023 endpoint disabled, 23505 an attempt is running (its delivery still pending).';

create or replace function private.sweep_webhook_deliveries() returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
    endpoint uuid;
    queued integer := 0;
begin
    -- Endpoints with deliveries due for a minute and no drain job waiting or running (it failed on
    -- an unexpected error, or was deleted): queued again. The drain marks dead what it cannot send
    -- before its horizon.
    for endpoint in
        select distinct d.endpoint_id
        from public.webhook_deliveries as d
        where
            d.status = 'pending' and d.next_attempt_at < now() - interval '1 minute'
            and not exists (
                select 1 from procrastinate.procrastinate_jobs as j
                where j.queueing_lock = 'webhook-endpoint:' || d.endpoint_id::text and j.status in ('todo', 'doing')
            )
        order by d.endpoint_id
    loop
        perform private.ensure_webhook_drain(endpoint);
        queued := queued + 1;
    end loop;
    return queued;
end
$$;
comment on function private.sweep_webhook_deliveries() is
'Safety net run by the worker every 5 minutes: endpoints whose deliveries are due without a drain job get one. '
'Returns how many endpoints were queued.';

-- delete_webhook_endpoint drops the endpoint's waiting drain job (sql_functions/webhooks/delete_webhook_endpoint.sql)
create or replace function public.delete_webhook_endpoint(endpoint_id uuid)
returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
    endpoint public.webhook_endpoints := private.managed_webhook_endpoint(delete_webhook_endpoint.endpoint_id);
begin
    -- Its waiting drain job would find nothing to send: drop it with the endpoint.
    delete from procrastinate.procrastinate_jobs as j
    where j.status = 'todo' and j.queueing_lock = 'webhook-endpoint:' || endpoint.id::text;
    delete from public.webhook_endpoints as e where e.id = endpoint.id;
end
$$;
comment on function public.delete_webhook_endpoint(uuid) is
'Deletes an endpoint, its secret, its deliveries and its waiting drain job (webhooks.manage). Errors: P0002 not '
'found, 42501 no permission.';
revoke all on function public.delete_webhook_endpoint(uuid) from public, anon;
grant execute on function public.delete_webhook_endpoint(uuid) to authenticated, service_role;

revoke execute on function private.ensure_webhook_drain(uuid, boolean), private.take_rate_limit(text, uuid, uuid),
private.rate_limit_setting(text, integer), private.prune_request_rate_limits() from public;

-- Waiting jobs of the old design (one per delivery) become drain jobs of their endpoints; a job
-- of the old task that still runs or is retried only queues its endpoint's drain (jobs/webhooks.py).
delete from procrastinate.procrastinate_jobs as j
where j.task_name = 'deliver_webhook' and j.status = 'todo';
select private.ensure_webhook_drain(e.endpoint_id)
from (
    select distinct d.endpoint_id from public.webhook_deliveries as d
    where d.status = 'pending'
) as e;

-- ---------------------------------------------------------------------------------------------
-- notifications: an answer is the asker's, not every member's
-- ---------------------------------------------------------------------------------------------
create or replace function private.notify_event() returns trigger
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
            -- insight.created: the answer went to the member who asked, in the response; telling
            -- every other member about each question is noise (one analyst's 200 questions were
            -- 800 notifications). Webhooks still receive the event.
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
'accounts.connect; anomaly.detected: every member; member.*: members with members.manage (and the member '
'whose role changed); insight.created: nobody (the asker has the answer). Whoever caused the event is not '
'notified.';

-- ---------------------------------------------------------------------------------------------
-- syncs first: priority 10 (every other job 0)
-- ---------------------------------------------------------------------------------------------
create or replace function private.enqueue_sync(
    target_account uuid, run_trigger public.sync_trigger, requested_by uuid default null
) returns uuid
language plpgsql volatile security definer set search_path = ''
as $$
declare
    account public.connected_accounts;
    run_id uuid;
begin
    select * into account from public.connected_accounts as a where a.id = target_account;
    if account.id is null then
        raise exception 'connected account not found' using errcode = 'P0002';
    end if;
    -- The queue is the source of truth: a run is pending while its job waits, or while its job
    -- runs and the run itself has not finished (a finished run's job is only being closed).
    select (j.args ->> 'sync_run_id')::uuid into run_id
    from procrastinate.procrastinate_jobs as j
    left join public.sync_runs as r on r.id = (j.args ->> 'sync_run_id')::uuid
    where
        (j.queueing_lock = 'sync:' || account.id::text and j.status = 'todo')
        or (
            j.lock = 'account:' || account.id::text
            and j.status = 'doing'
            and r.status in ('queued', 'running')
        )
    order by j.id desc
    limit 1;
    if run_id is not null then
        return run_id;
    end if;
    -- Runs left queued or running without a job (their job was lost) are closed, not resumed.
    update public.sync_runs as r set status = 'failed', finished_at = now(), error = 'superseded: its job was lost'
    where r.account_id = target_account and r.status in ('queued', 'running');
    insert into public.sync_runs (org_id, account_id, trigger, requested_by)
    values (account.org_id, account.id, run_trigger, requested_by)
    returning id into run_id;
    -- Priority 10: a worker serving several queues fetches syncs before webhook and insight jobs.
    perform procrastinate.procrastinate_defer_jobs_v1(array[row(
        'sync', 'sync_account', 10, 'account:' || account.id::text, 'sync:' || account.id::text,
        jsonb_build_object('sync_run_id', run_id), null
    )::procrastinate.procrastinate_job_to_defer_v1]);
    return run_id;
end
$$;
comment on function private.enqueue_sync(uuid, public.sync_trigger, uuid) is
'Queues a sync of one account (sync_runs row + Procrastinate job with queueing lock sync:<id>, priority 10); '
'returns the run id, or the pending run''s id when one is already waiting, or running and not yet finished.';

update procrastinate.procrastinate_jobs as j set priority = 10
where j.task_name = 'sync_account' and j.status = 'todo' and j.priority < 10;
