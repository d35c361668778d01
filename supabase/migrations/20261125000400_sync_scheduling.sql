-- =============================================================================================
-- Migration: sync scheduling, provider tokens, OAuth state and the shared rate limiter
--   * private.provider_tokens: OAuth tokens, encrypted by the application (AES-GCM, key only in
--     settings); one row per connected account, locked FOR UPDATE while refreshing so two workers
--     never race (single-flight).
--   * private.oauth_states: signed, expiring, single-use OAuth states bound to user/org/artist.
--   * private.provider_rate_limits: a token bucket per provider app shared by every worker.
--   * private.enqueue_sync(): one sync_runs row + one Procrastinate job per account, deduplicated
--     by a queueing lock (`sync:<account id>`), so a second request returns the queued run.
--   * private.enqueue_due_syncs(): what pg_cron runs daily at 02:00 UTC (`arti-daily-sync`).
-- =============================================================================================

create table private.provider_tokens (
    account_id uuid primary key references public.connected_accounts (id) on delete cascade,
    access_token_encrypted text not null,
    refresh_token_encrypted text,
    expires_at timestamptz,
    scope text,
    updated_at timestamptz not null default now()
);
comment on table private.provider_tokens is
'OAuth tokens per connected account, encrypted by the application (key ring in settings, never here).';
comment on column private.provider_tokens.account_id is 'The connected account.';
comment on column private.provider_tokens.access_token_encrypted is
'v1.<kid>.<AES-GCM ciphertext> of the access token.';
comment on column private.provider_tokens.refresh_token_encrypted is
'Encrypted refresh token, if the provider issues one.';
comment on column private.provider_tokens.expires_at is 'When the access token expires.';
comment on column private.provider_tokens.scope is 'Scopes granted.';
comment on column private.provider_tokens.updated_at is 'When the tokens were last stored or refreshed.';

create table private.oauth_states (
    id uuid primary key default extensions.gen_random_uuid(),
    state_hash bytea not null unique,
    provider public.provider not null,
    user_id uuid not null references auth.users (id) on delete cascade,
    org_id uuid not null references public.organizations (id) on delete cascade,
    artist_id uuid not null references public.artists (id) on delete cascade,
    code_verifier_encrypted text,
    redirect_to text not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null default now() + interval '10 minutes',
    used_at timestamptz
);
create index oauth_states_expires_at_idx on private.oauth_states (expires_at);
comment on table private.oauth_states is
'Pending OAuth authorizations: single use, expiring, bound to user, org and artist.';
comment on column private.oauth_states.id is 'State id.';
comment on column private.oauth_states.state_hash is
'sha256 of the state sent to the provider (the state itself is not stored).';
comment on column private.oauth_states.provider is 'Provider being connected.';
comment on column private.oauth_states.user_id is 'User who started the flow; only they may finish it.';
comment on column private.oauth_states.org_id is 'Organization the account will belong to.';
comment on column private.oauth_states.artist_id is 'Artist the account will belong to.';
comment on column private.oauth_states.code_verifier_encrypted is 'Encrypted PKCE code verifier.';
comment on column private.oauth_states.redirect_to is 'Allow-listed frontend URL to return to.';
comment on column private.oauth_states.created_at is 'When the flow started.';
comment on column private.oauth_states.expires_at is 'After this the callback is refused.';
comment on column private.oauth_states.used_at is 'When the callback consumed it (single use).';

create table private.provider_rate_limits (
    provider public.provider primary key,
    capacity numeric not null check (capacity > 0),
    refill_per_second numeric not null check (refill_per_second > 0),
    tokens numeric not null,
    refilled_at timestamptz not null default clock_timestamp(),
    blocked_until timestamptz
);
comment on table private.provider_rate_limits is 'Token bucket per provider app, shared by all workers.';
comment on column private.provider_rate_limits.provider is 'Provider app.';
comment on column private.provider_rate_limits.capacity is 'Bucket size (burst).';
comment on column private.provider_rate_limits.refill_per_second is 'Requests allowed per second on average.';
comment on column private.provider_rate_limits.tokens is 'Tokens left at refilled_at.';
comment on column private.provider_rate_limits.refilled_at is 'When tokens was computed.';
comment on column private.provider_rate_limits.blocked_until is 'Set from a 429 Retry-After: nobody calls before this.';

insert into private.provider_rate_limits (provider, capacity, refill_per_second, tokens)
values ('spotify', 20, 5, 20), ('youtube', 10, 2, 10), ('instagram', 10, 1, 10), ('soundcloud', 10, 2, 10);

create table private.settings (
    key text primary key,
    value text not null
);
comment on table private.settings is 'Operational settings kept in the database (e.g. the daily sync schedule).';
comment on column private.settings.key is 'Setting name.';
comment on column private.settings.value is 'Setting value.';
insert into private.settings (key, value) values
('sync.daily_schedule', '0 2 * * *'),
('sync.manual_cooldown_seconds', '300'),
('sync.backfill_days', '28');

alter table private.provider_tokens enable row level security;
alter table private.oauth_states enable row level security;
alter table private.provider_rate_limits enable row level security;
alter table private.settings enable row level security;
revoke all on private.provider_tokens, private.oauth_states, private.provider_rate_limits, private.settings
from public, anon, authenticated;

-- ---------------------------------------------------------------------------------------------
-- rate limiter: take one token, or learn how long to wait
-- ---------------------------------------------------------------------------------------------
create function private.take_rate_limit_token(target public.provider) returns double precision
language plpgsql volatile set search_path = ''
as $$
declare
    bucket private.provider_rate_limits;
    now_ts timestamptz := clock_timestamp();
    available numeric;
begin
    select * into bucket from private.provider_rate_limits as b where b.provider = target for update;
    if bucket.provider is null then
        return 0;
    end if;
    if bucket.blocked_until is not null and bucket.blocked_until > now_ts then
        return extract(epoch from bucket.blocked_until - now_ts);
    end if;
    available := least(
        bucket.capacity,
        bucket.tokens + extract(epoch from now_ts - bucket.refilled_at) * bucket.refill_per_second
    );
    if available >= 1 then
        update private.provider_rate_limits as b set tokens = available - 1, refilled_at = now_ts
        where b.provider = target;
        return 0;
    end if;
    update private.provider_rate_limits as b set tokens = available, refilled_at = now_ts
    where b.provider = target;
    return ((1 - available) / bucket.refill_per_second)::double precision;
end
$$;
comment on function private.take_rate_limit_token(public.provider) is
'Takes a request token for a provider app: 0 when granted, otherwise the seconds to wait.';

create function private.block_provider_until(target public.provider, until timestamptz) returns void
language sql volatile set search_path = ''
as $$
    update private.provider_rate_limits as b
    set blocked_until = greatest(coalesce(b.blocked_until, until), until)
    where b.provider = target
$$;
comment on function private.block_provider_until(public.provider, timestamptz) is
'Records a provider 429 (Retry-After) so every worker waits until then.';

-- ---------------------------------------------------------------------------------------------
-- enqueueing
-- ---------------------------------------------------------------------------------------------
create function private.enqueue_sync(
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
    -- The queue is the source of truth: a run counts as pending only while its job waits or runs.
    select (j.args ->> 'sync_run_id')::uuid into run_id
    from procrastinate.procrastinate_jobs as j
    where
        (j.queueing_lock = 'sync:' || account.id::text and j.status = 'todo')
        or (j.lock = 'account:' || account.id::text and j.status = 'doing')
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
    perform procrastinate.procrastinate_defer_jobs_v1(array[row(
        'sync', 'sync_account', 0, 'account:' || account.id::text, 'sync:' || account.id::text,
        jsonb_build_object('sync_run_id', run_id), null
    )::procrastinate.procrastinate_job_to_defer_v1]);
    return run_id;
end
$$;
comment on function private.enqueue_sync(uuid, public.sync_trigger, uuid) is
'Queues a sync of one account (sync_runs row + Procrastinate job with queueing lock sync:<id>); returns the run id, '
'or the pending run''s id when one is already waiting or running.';

create function private.enqueue_due_syncs() returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
    due record;
    queued integer := 0;
begin
    for due in
        select a.id
        from public.connected_accounts as a
        where a.status = 'active' and (a.next_sync_at is null or a.next_sync_at <= now())
        order by a.next_sync_at nulls first
    loop
        perform private.enqueue_sync(due.id, 'schedule');
        queued := queued + 1;
    end loop;
    return queued;
end
$$;
comment on function private.enqueue_due_syncs() is
'Run by pg_cron (arti-daily-sync): queues a sync for every active account that is due. Returns how many.';

create function private.set_sync_schedule(cron_expression text) returns void
language plpgsql volatile set search_path = ''
as $$
begin
    perform cron.schedule('arti-daily-sync', cron_expression, 'select private.enqueue_due_syncs()');
    insert into private.settings (key, value) values ('sync.daily_schedule', cron_expression)
    on conflict (key) do update set value = excluded.value;
end
$$;
comment on function private.set_sync_schedule(text) is 'Changes the daily sync schedule (cron syntax, UTC).';

revoke execute on all functions in schema private from public;

select private.set_sync_schedule('0 2 * * *');
