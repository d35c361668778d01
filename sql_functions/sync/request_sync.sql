-- RPC request_sync: a member with sync.run asks for a sync of one account now.
create or replace function public.request_sync(account_id uuid)
returns uuid
language plpgsql volatile security definer set search_path = ''
as $$
declare
    account public.connected_accounts;
    cooldown integer := coalesce(
        (select s.value::integer from private.settings as s where s.key = 'sync.manual_cooldown_seconds'), 300
    );
    last_finished timestamptz;
begin
    select a.* into account from public.connected_accounts as a where a.id = request_sync.account_id;
    if account.id is null or account.org_id not in (select private.my_org_ids()) then
        raise exception 'connected account not found' using errcode = 'P0002';
    end if;
    if not private.has_permission(account.org_id, 'sync.run') then
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
    return private.enqueue_sync(account.id, 'manual', auth.uid());
end
$$;
comment on function public.request_sync(uuid) is
'Queues a sync of one account now (sync.run). Returns the sync run id (the queued one if a sync is already waiting). '
'Errors: P0002 not found, 42501 no permission, 22023 account not active, PT429 (HTTP 429) within the cooldown.';
revoke all on function public.request_sync(uuid) from public, anon;
grant execute on function public.request_sync(uuid) to authenticated, service_role;
