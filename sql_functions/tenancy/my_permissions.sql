-- RPC my_permissions: the caller's permissions in an organization, so the UI shows tabs by permission.
create or replace function public.my_permissions(org_id uuid)
returns text[]
language plpgsql stable security invoker set search_path = ''
as $$
begin
    if auth.uid() is null then
        raise exception 'sign in first: this request carries no user (its token has no sub claim)'
        using errcode = '42501';
    end if;
    if my_permissions.org_id is null then
        raise exception 'org_id is required' using errcode = '22023';
    end if;
    return (
        select coalesce(array_agg(rp.permission order by rp.permission), '{}')
        from public.memberships as m
        inner join public.role_permissions as rp on m.role = rp.role
        where m.org_id = my_permissions.org_id and m.user_id = auth.uid()
    );
end
$$;
comment on function public.my_permissions(uuid) is
'Permissions the caller holds in an organization (empty when not a member), e.g. {members.manage,sync.run}. '
'Errors: 42501 without a signed-in user, 22023 no org_id.';
revoke all on function public.my_permissions(uuid) from public, anon;
grant execute on function public.my_permissions(uuid) to authenticated, service_role;
