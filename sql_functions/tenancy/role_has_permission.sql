-- Private helper role_has_permission: whether a role carries a permission (false for a NULL role or permission).
create or replace function private.role_has_permission(held public.org_role, wanted text)
returns boolean
language plpgsql stable set search_path = ''
as $$
begin
    return coalesce(held is not null and exists (
        select 1 from public.role_permissions as rp where rp.role = held and rp.permission = wanted
    ), false);
end
$$;
comment on function private.role_has_permission(public.org_role, text) is
'True when the role holds the permission; false (never null) when either is null.';
revoke all on function private.role_has_permission(public.org_role, text) from public, anon, authenticated;
