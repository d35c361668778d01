-- RPC replay_webhook_delivery: a webhook manager sends a delivery again (same event id).
create or replace function public.replay_webhook_delivery(delivery_id uuid)
returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
    delivery_org uuid;
begin
    select d.org_id into delivery_org
    from public.webhook_deliveries as d
    where d.id = replay_webhook_delivery.delivery_id;
    if delivery_org is null or delivery_org not in (select private.my_org_ids()) then
        raise exception 'webhook delivery not found' using errcode = 'P0002';
    end if;
    if not private.has_permission(delivery_org, 'webhooks.manage') then
        raise exception 'you need the webhooks.manage permission (admin or owner) to replay deliveries'
        using errcode = '42501';
    end if;
    return private.requeue_webhook_delivery(replay_webhook_delivery.delivery_id);
end
$$;
comment on function public.replay_webhook_delivery(uuid) is
'Queues a new attempt of a delivery with the same event id, whatever its status (webhooks.manage); its retry '
'horizon restarts. Errors: P0002 not found, 42501 no permission, 22023 endpoint disabled, 23505 attempt running.';
revoke all on function public.replay_webhook_delivery(uuid) from public, anon;
grant execute on function public.replay_webhook_delivery(uuid) to authenticated, service_role;
