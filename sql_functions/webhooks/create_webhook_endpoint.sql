-- RPC create_webhook_endpoint: a webhook manager adds a receiver; its signing secret is returned once.
-- The public function runs as the caller; private.create_webhook_endpoint is its privileged step (the secret lives
-- in private.webhook_secrets).
create or replace function private.create_webhook_endpoint(
    org_id uuid, url text, events text[], description text default null
)
returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
    caller uuid := private.caller_id();
    target_org uuid := create_webhook_endpoint.org_id;
    clean_url text := btrim(create_webhook_endpoint.url);
    clean_events text[];
    clean_description text := nullif(btrim(create_webhook_endpoint.description), '');
    problem text;
    new_secret text := 'whsec_' || encode(extensions.gen_random_bytes(32), 'hex');
    created public.webhook_endpoints;
begin
    if target_org is null then
        raise exception 'org_id is required' using errcode = '22023';
    end if;
    if not private.has_permission(target_org, 'webhooks.manage')
        or not private.role_has_permission(private.locked_role(target_org, caller), 'webhooks.manage') then
        raise exception 'you need the webhooks.manage permission (admin or owner) to manage webhooks'
        using errcode = '42501';
    end if;
    problem := private.webhook_url_problem(clean_url);
    if problem is not null then
        raise exception '%', problem using errcode = '22023';
    end if;
    clean_events := private.webhook_events(create_webhook_endpoint.events);
    if char_length(clean_description) > 500 then
        raise exception 'description must be at most 500 characters' using errcode = '22023';
    end if;
    if exists (select 1 from public.webhook_endpoints as e where e.org_id = target_org and e.url = clean_url) then
        raise exception 'this organization already has an endpoint for %', clean_url using errcode = '23505';
    end if;
    insert into public.webhook_endpoints (org_id, url, events, description, secret_hint, created_by)
    values (target_org, clean_url, clean_events, clean_description, 'whsec_...' || right(new_secret, 4), caller)
    returning * into created;
    insert into private.webhook_secrets (endpoint_id, secret) values (created.id, new_secret);
    return to_jsonb(created) || jsonb_build_object('secret', new_secret);
end
$$;
comment on function private.create_webhook_endpoint(uuid, text, text[], text) is
'Privileged step of public.create_webhook_endpoint: refuses a NULL caller, checks webhooks.manage with the '
'caller''s membership row locked, validates (SSRF guard, events), stores the endpoint and its secret. Errors: '
'42501, 22023, 23505.';
revoke all on function private.create_webhook_endpoint(uuid, text, text[], text) from public, anon;
grant execute on function private.create_webhook_endpoint(uuid, text, text[], text) to authenticated, service_role;

create or replace function public.create_webhook_endpoint(
    org_id uuid, url text, events text[], description text default null
)
returns jsonb
language plpgsql volatile security invoker set search_path = ''
as $$
begin
    return private.create_webhook_endpoint(
        create_webhook_endpoint.org_id, create_webhook_endpoint.url, create_webhook_endpoint.events,
        create_webhook_endpoint.description
    );
end
$$;
comment on function public.create_webhook_endpoint(uuid, text, text[], text) is
'Adds a webhook endpoint (webhooks.manage). Returns the endpoint with its signing secret, shown this once. Runs as '
'the caller; private.create_webhook_endpoint does the privileged step. Errors: 42501 no permission or no signed-in '
'user, 22023 bad or refused URL (SSRF guard), unknown event, 23505 URL already used.';
revoke all on function public.create_webhook_endpoint(uuid, text, text[], text) from public, anon;
grant execute on function public.create_webhook_endpoint(uuid, text, text[], text) to authenticated, service_role;
