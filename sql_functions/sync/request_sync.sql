-- RPC request_sync: a member with sync.run asks for a sync of one account now.
-- The public function runs as the caller; private.request_sync is its privileged step (settings, the queue).
create or replace function private.request_sync(account_id uuid)
returns uuid
language plpgsql volatile security definer set search_path = ''
as $$
declare
    caller uuid := private.caller_id();
    account public.connected_accounts;
    cooldown integer := coalesce(
        (select s.value::integer from private.settings as s where s.key = 'sync.manual_cooldown_seconds'), 300
    );
    last_finished timestamptz;
begin
    if request_sync.account_id is null then
        raise exception 'account_id is required' using errcode = '22023';
    end if;
    select a.* into account from public.connected_accounts as a where a.id = request_sync.account_id;
    if account.id is null or account.org_id not in (select private.my_org_ids()) then
        raise exception 'connected account not found' using errcode = 'P0002';
    end if;
    -- The caller's role is read with their membership row locked: a manager demoted or removed concurrently is
    -- judged by the outcome.
    if not private.role_has_permission(private.locked_role(account.org_id, caller), 'sync.run') then
        raise exception 'you need the sync.run permission (manager or above) to sync accounts' using errcode = '42501';
    end if;
    if account.status <> 'active' then
        raise exception 'this account is %; reconnect it before syncing', account.status using errcode = '22023';
    end if;
    select max(r.finished_at) into last_finished
    from public.sync_runs as r
    where r.account_id = account.id and r.status in ('succeeded', 'failed');
    if last_finished > now() - make_interval(secs => cooldown)
        and not exists (
            select 1 from public.sync_runs as r where r.account_id = account.id and r.status in ('queued', 'running')
        ) then
        -- PostgREST turns SQLSTATE PTxyz into HTTP status xyz.
        raise exception 'this account was synced % seconds ago; try again in % seconds',
            floor(extract(epoch from now() - last_finished)),
            ceil(cooldown - extract(epoch from now() - last_finished))
        using errcode = 'PT429', hint = 'syncs are limited to one per account every ' || cooldown || ' seconds';
    end if;
    return private.enqueue_sync(account.id, 'manual', caller);
end
$$;
comment on function private.request_sync(uuid) is
'Privileged step of public.request_sync: refuses a NULL caller, checks sync.run with the caller''s membership row '
'locked, the account''s status and the cooldown, then queues the sync. Errors: 42501, 22023, P0002, PT429.';
revoke all on function private.request_sync(uuid) from public, anon;
grant execute on function private.request_sync(uuid) to authenticated, service_role;

create or replace function public.request_sync(account_id uuid)
returns uuid
language plpgsql volatile security invoker set search_path = ''
as $$
begin
    return private.request_sync(request_sync.account_id);
end
$$;
comment on function public.request_sync(uuid) is
'Queues a sync of one account now (sync.run). Returns the sync run id (the queued one if a sync is already waiting). '
'Runs as the caller; private.request_sync does the privileged step. Errors: 42501 no permission or no signed-in '
'user, P0002 not found, 22023 account not active, PT429 (HTTP 429) within the cooldown.';
revoke all on function public.request_sync(uuid) from public, anon;
grant execute on function public.request_sync(uuid) to authenticated, service_role;
