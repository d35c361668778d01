-- RPC my_permissions: the caller's permissions in an organization, so the UI shows tabs by permission.
create or replace function public.my_permissions(org_id uuid)
returns text[]
language sql stable security invoker set search_path = ''
as $$
    select coalesce(array_agg(rp.permission order by rp.permission), '{}')
    from public.memberships as m
    inner join public.role_permissions as rp on m.role = rp.role
    where m.org_id = my_permissions.org_id and m.user_id = auth.uid()
$$;
comment on function public.my_permissions(uuid) is
'Permissions the caller holds in an organization (empty when not a member), e.g. {members.manage,sync.run}.';
revoke all on function public.my_permissions(uuid) from public, anon;
grant execute on function public.my_permissions(uuid) to authenticated, service_role;
