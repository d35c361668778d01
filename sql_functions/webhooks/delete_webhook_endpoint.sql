-- RPC delete_webhook_endpoint: remove an endpoint with its secret and delivery log.
create or replace function public.delete_webhook_endpoint(endpoint_id uuid)
returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
    endpoint public.webhook_endpoints := private.managed_webhook_endpoint(delete_webhook_endpoint.endpoint_id);
begin
    -- Jobs still waiting for its deliveries would find nothing to send: drop them with the endpoint.
    delete from procrastinate.procrastinate_jobs as j
    where
        j.status = 'todo'
        and j.queueing_lock in (
            select 'webhook:' || d.id::text from public.webhook_deliveries as d where d.endpoint_id = endpoint.id
        );
    delete from public.webhook_endpoints as e where e.id = endpoint.id;
end
$$;
comment on function public.delete_webhook_endpoint(uuid) is
'Deletes an endpoint, its secret, its deliveries and their waiting jobs (webhooks.manage). Errors: P0002 not '
'found, 42501 no permission.';
revoke all on function public.delete_webhook_endpoint(uuid) from public, anon;
grant execute on function public.delete_webhook_endpoint(uuid) to authenticated, service_role;
