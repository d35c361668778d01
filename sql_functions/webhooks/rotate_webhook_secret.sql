-- RPC rotate_webhook_secret: a new signing secret, returned once; the old one may sign alongside for a while.
-- The public function runs as the caller; private.rotate_webhook_secret is its privileged step (the secrets live
-- in private.webhook_secrets).
create or replace function private.rotate_webhook_secret(endpoint_id uuid, overlap_seconds integer default 0)
returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
    endpoint public.webhook_endpoints := private.managed_webhook_endpoint(rotate_webhook_secret.endpoint_id);
    new_secret text := 'whsec_' || encode(extensions.gen_random_bytes(32), 'hex');
    overlap_until timestamptz;
begin
    if coalesce(rotate_webhook_secret.overlap_seconds, -1) not between 0 and 604800 then
        raise exception 'overlap_seconds must be between 0 and 604800 (7 days)' using errcode = '22023';
    end if;
    if rotate_webhook_secret.overlap_seconds > 0 then
        overlap_until := now() + make_interval(secs => rotate_webhook_secret.overlap_seconds);
    end if;
    update private.webhook_secrets as s
    set
        previous_secret = case when overlap_until is not null then s.secret end,
        previous_valid_until = overlap_until,
        secret = new_secret,
        updated_at = now()
    where s.endpoint_id = endpoint.id;
    update public.webhook_endpoints as e
    set secret_hint = 'whsec_...' || right(new_secret, 4), secret_rotated_at = now()
    where e.id = endpoint.id;
    return jsonb_build_object(
        'endpoint_id', endpoint.id, 'secret', new_secret, 'secret_hint', 'whsec_...' || right(new_secret, 4),
        'previous_secret_valid_until', overlap_until
    );
end
$$;
comment on function private.rotate_webhook_secret(uuid, integer) is
'Privileged step of public.rotate_webhook_secret: private.managed_webhook_endpoint checks the caller, then the '
'secret is replaced (the old one kept for overlap_seconds). Errors: 42501, 22023, P0002.';
revoke all on function private.rotate_webhook_secret(uuid, integer) from public, anon;
grant execute on function private.rotate_webhook_secret(uuid, integer) to authenticated, service_role;

create or replace function public.rotate_webhook_secret(endpoint_id uuid, overlap_seconds integer default 0)
returns jsonb
language plpgsql volatile security invoker set search_path = ''
as $$
begin
    return private.rotate_webhook_secret(rotate_webhook_secret.endpoint_id, rotate_webhook_secret.overlap_seconds);
end
$$;
comment on function public.rotate_webhook_secret(uuid, integer) is
'Replaces an endpoint''s signing secret (webhooks.manage) and returns the new one, shown this once. With '
'overlap_seconds > 0 the old secret also signs (a second v1= signature) until then. Runs as the caller; '
'private.rotate_webhook_secret does the privileged step. Errors: P0002, 42501, 22023.';
revoke all on function public.rotate_webhook_secret(uuid, integer) from public, anon;
grant execute on function public.rotate_webhook_secret(uuid, integer) to authenticated, service_role;
