-- Private helper managed_webhook_endpoint: the endpoint an RPC is about to change, locked, if the caller may.
create or replace function private.managed_webhook_endpoint(target_endpoint uuid)
returns public.webhook_endpoints
language plpgsql volatile security definer set search_path = ''
as $$
declare
    endpoint public.webhook_endpoints;
begin
    select e.* into endpoint from public.webhook_endpoints as e where e.id = target_endpoint for update;
    if endpoint.id is null or endpoint.org_id not in (select private.my_org_ids()) then
        raise exception 'webhook endpoint not found' using errcode = 'P0002';
    end if;
    if not private.has_permission(endpoint.org_id, 'webhooks.manage') then
        raise exception 'you need the webhooks.manage permission (admin or owner) to manage webhooks'
        using errcode = '42501';
    end if;
    return endpoint;
end
$$;
comment on function private.managed_webhook_endpoint(uuid) is
'The endpoint, locked for update, when the caller holds webhooks.manage in its organization. Errors: '
'P0002 unknown or another organization''s, 42501 no permission.';
revoke all on function private.managed_webhook_endpoint(uuid) from public, anon, authenticated;
