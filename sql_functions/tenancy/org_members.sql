-- RPC org_members: the member list with emails, for managers, admins, owners and platform staff.
-- The public function runs as the caller; private.org_members reads the emails (auth.users).
create or replace function private.org_members(org_id uuid)
returns table (
    user_id uuid, email text, full_name text, avatar_url text, role public.org_role, joined_at timestamptz
)
language plpgsql stable security definer set search_path = ''
as $$
#variable_conflict use_column
begin
    perform private.caller_id();
    if org_members.org_id is null then
        raise exception 'org_id is required' using errcode = '22023';
    end if;
    if not (private.has_permission(org_members.org_id, 'members.read') or private.is_platform_admin()) then
        raise exception 'only managers, admins and owners can list members with their emails'
        using errcode = '42501';
    end if;
    return query
    select m.user_id, u.email::text, p.full_name, p.avatar_url, m.role, m.created_at
    from public.memberships as m
    inner join auth.users as u on m.user_id = u.id
    left join public.profiles as p on m.user_id = p.id
    where m.org_id = org_members.org_id
    order by m.role desc, u.email;
end
$$;
comment on function private.org_members(uuid) is
'Privileged step of public.org_members: refuses a NULL caller, checks members.read (or platform staff) and reads '
'the members with their emails from auth.users. Errors: 42501, 22023.';
revoke all on function private.org_members(uuid) from public, anon;
grant execute on function private.org_members(uuid) to authenticated, service_role;

create or replace function public.org_members(org_id uuid)
returns table (
    user_id uuid, email text, full_name text, avatar_url text, role public.org_role, joined_at timestamptz
)
language plpgsql stable security invoker set search_path = ''
as $$
begin
    return query select * from private.org_members(org_members.org_id);
end
$$;
comment on function public.org_members(uuid) is
'Members of an organization with email, name and role (members.read: manager and above; platform '
'admins). Runs as the caller; private.org_members reads the emails. Error: 42501.';
revoke all on function public.org_members(uuid) from public, anon;
grant execute on function public.org_members(uuid) to authenticated, service_role;
