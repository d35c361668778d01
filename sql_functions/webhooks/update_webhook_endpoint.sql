-- RPC update_webhook_endpoint: change an endpoint's URL, events, description or active flag.
-- The public function runs as the caller; private.update_webhook_endpoint is its privileged step.
create or replace function private.update_webhook_endpoint(
    endpoint_id uuid,
    url text default null,
    events text[] default null,
    active boolean default null,
    description text default null
)
returns public.webhook_endpoints
language plpgsql volatile security definer set search_path = ''
as $$
declare
    endpoint public.webhook_endpoints := private.managed_webhook_endpoint(update_webhook_endpoint.endpoint_id);
    new_url text := coalesce(btrim(update_webhook_endpoint.url), endpoint.url);
    new_events text[] := endpoint.events;
    new_description text := endpoint.description;
    problem text;
    updated public.webhook_endpoints;
begin
    if new_url is distinct from endpoint.url then
        problem := private.webhook_url_problem(new_url);
        if problem is not null then
            raise exception '%', problem using errcode = '22023';
        end if;
        if exists (
            select 1 from public.webhook_endpoints as e
            where e.org_id = endpoint.org_id and e.url = new_url and e.id <> endpoint.id
        ) then
            raise exception 'this organization already has an endpoint for %', new_url using errcode = '23505';
        end if;
    end if;
    if update_webhook_endpoint.events is not null then
        new_events := private.webhook_events(update_webhook_endpoint.events);
    end if;
    if update_webhook_endpoint.description is not null then
        new_description := nullif(btrim(update_webhook_endpoint.description), '');
        if char_length(new_description) > 500 then
            raise exception 'description must be at most 500 characters' using errcode = '22023';
        end if;
    end if;
    update public.webhook_endpoints as e
    set
        url = new_url,
        events = new_events,
        description = new_description,
        active = coalesce(update_webhook_endpoint.active, e.active)
    where e.id = endpoint.id
    returning * into updated;
    return updated;
end
$$;
comment on function private.update_webhook_endpoint(uuid, text, text[], boolean, text) is
'Privileged step of public.update_webhook_endpoint: private.managed_webhook_endpoint checks the caller, then the '
'changes are validated (SSRF guard, events) and applied. Errors: 42501, 22023, P0002, 23505.';
revoke all on function private.update_webhook_endpoint(uuid, text, text[], boolean, text) from public, anon;
grant execute on function private.update_webhook_endpoint(uuid, text, text[], boolean, text)
to authenticated, service_role;

create or replace function public.update_webhook_endpoint(
    endpoint_id uuid,
    url text default null,
    events text[] default null,
    active boolean default null,
    description text default null
)
returns public.webhook_endpoints
language plpgsql volatile security invoker set search_path = ''
as $$
begin
    return private.update_webhook_endpoint(
        update_webhook_endpoint.endpoint_id, update_webhook_endpoint.url, update_webhook_endpoint.events,
        update_webhook_endpoint.active, update_webhook_endpoint.description
    );
end
$$;
comment on function public.update_webhook_endpoint(uuid, text, text[], boolean, text) is
'Changes an endpoint (webhooks.manage); null arguments keep the current value, an empty description clears it. '
'The secret is not returned. Runs as the caller; private.update_webhook_endpoint does the privileged step. '
'Errors: P0002 not found, 42501 no permission or no signed-in user, 22023 bad input or refused URL, '
'23505 URL already used.';
revoke all on function public.update_webhook_endpoint(uuid, text, text[], boolean, text) from public, anon;
grant execute on function public.update_webhook_endpoint(uuid, text, text[], boolean, text)
to authenticated, service_role;
