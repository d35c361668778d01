-- RPC replay_webhook_delivery: a webhook manager sends a delivery again (same event id).
-- The public function runs as the caller; private.replay_webhook_delivery is its privileged step (the queue).
create or replace function private.replay_webhook_delivery(delivery_id uuid)
returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
    caller uuid := private.caller_id();
    delivery_org uuid;
    caller_role public.org_role;
begin
    if replay_webhook_delivery.delivery_id is null then
        raise exception 'delivery_id is required' using errcode = '22023';
    end if;
    select d.org_id into delivery_org
    from public.webhook_deliveries as d
    where d.id = replay_webhook_delivery.delivery_id;
    if delivery_org is null or private.my_role(delivery_org) is null then
        raise exception 'webhook delivery not found' using errcode = 'P0002';
    end if;
    caller_role := private.locked_role(delivery_org, caller);
    if caller_role is null then
        raise exception 'webhook delivery not found' using errcode = 'P0002';
    end if;
    if not private.role_has_permission(caller_role, 'webhooks.manage') then
        raise exception 'you need the webhooks.manage permission (admin or owner) to replay deliveries'
        using errcode = '42501';
    end if;
    return private.requeue_webhook_delivery(replay_webhook_delivery.delivery_id);
end
$$;
comment on function private.replay_webhook_delivery(uuid) is
'Privileged step of public.replay_webhook_delivery: refuses a NULL caller, checks webhooks.manage with the '
'caller''s membership row locked, then requeues the delivery. Errors: 42501, 22023, P0002, 23505.';
revoke all on function private.replay_webhook_delivery(uuid) from public, anon;
grant execute on function private.replay_webhook_delivery(uuid) to authenticated, service_role;

create or replace function public.replay_webhook_delivery(delivery_id uuid)
returns jsonb
language plpgsql volatile security invoker set search_path = ''
as $$
begin
    return private.replay_webhook_delivery(replay_webhook_delivery.delivery_id);
end
$$;
comment on function public.replay_webhook_delivery(uuid) is
'Queues a new attempt of a delivery with the same event id, whatever its status (webhooks.manage); its retry '
'horizon restarts. Runs as the caller; private.replay_webhook_delivery does the privileged step. Errors: P0002 not '
'found, 42501 no permission or no signed-in user, 22023 endpoint disabled, 23505 attempt running.';
revoke all on function public.replay_webhook_delivery(uuid) from public, anon;
grant execute on function public.replay_webhook_delivery(uuid) to authenticated, service_role;
