-- RPC delete_webhook_endpoint: remove an endpoint with its secret and delivery log.
-- The public function runs as the caller; private.delete_webhook_endpoint is its privileged step (the queue).
create or replace function private.delete_webhook_endpoint(endpoint_id uuid)
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
comment on function private.delete_webhook_endpoint(uuid) is
'Privileged step of public.delete_webhook_endpoint: private.managed_webhook_endpoint checks the caller, then the '
'endpoint (its secret and deliveries cascade) and its waiting drain job are deleted. Errors: 42501, 22023, P0002.';
revoke all on function private.delete_webhook_endpoint(uuid) from public, anon;
grant execute on function private.delete_webhook_endpoint(uuid) to authenticated, service_role;

create or replace function public.delete_webhook_endpoint(endpoint_id uuid)
returns void
language plpgsql volatile security invoker set search_path = ''
as $$
begin
    perform private.delete_webhook_endpoint(delete_webhook_endpoint.endpoint_id);
end
$$;
comment on function public.delete_webhook_endpoint(uuid) is
'Deletes an endpoint, its secret, its deliveries and its waiting drain job (webhooks.manage). Runs as the caller; '
'private.delete_webhook_endpoint does the privileged step. Errors: P0002 not found, 42501 no permission or no '
'signed-in user.';
revoke all on function public.delete_webhook_endpoint(uuid) from public, anon;
grant execute on function public.delete_webhook_endpoint(uuid) to authenticated, service_role;
