-- Private helper managed_webhook_endpoint: the endpoint an RPC is about to change, locked, if the caller may.
-- Called by the privileged steps of update/delete_webhook_endpoint and rotate_webhook_secret. The caller is checked
-- first (NULL user: 42501; not a member: not found), with their membership row locked so a concurrent demotion or
-- removal is judged by its outcome; only then is the endpoint locked.
create or replace function private.managed_webhook_endpoint(target_endpoint uuid)
returns public.webhook_endpoints
language plpgsql volatile security definer set search_path = ''
as $$
declare
    caller uuid := private.caller_id();
    endpoint_org uuid;
    caller_role public.org_role;
    endpoint public.webhook_endpoints;
begin
    if target_endpoint is null then
        raise exception 'endpoint_id is required' using errcode = '22023';
    end if;
    select e.org_id into endpoint_org from public.webhook_endpoints as e where e.id = target_endpoint;
    if endpoint_org is null or private.my_role(endpoint_org) is null then
        raise exception 'webhook endpoint not found' using errcode = 'P0002';
    end if;
    caller_role := private.locked_role(endpoint_org, caller);
    if caller_role is null then
        raise exception 'webhook endpoint not found' using errcode = 'P0002';
    end if;
    if not private.role_has_permission(caller_role, 'webhooks.manage') then
        raise exception 'you need the webhooks.manage permission (admin or owner) to manage webhooks'
        using errcode = '42501';
    end if;
    select e.* into endpoint from public.webhook_endpoints as e where e.id = target_endpoint for update;
    if endpoint.id is null then
        raise exception 'webhook endpoint not found' using errcode = 'P0002';
    end if;
    return endpoint;
end
$$;
comment on function private.managed_webhook_endpoint(uuid) is
'The endpoint, locked for update, when the caller holds webhooks.manage in its organization (role read with the '
'caller''s membership row locked). Errors: 42501 no signed-in user or no permission, P0002 unknown or another '
'organization''s, 22023 no id.';
revoke all on function private.managed_webhook_endpoint(uuid) from public, anon, authenticated;
