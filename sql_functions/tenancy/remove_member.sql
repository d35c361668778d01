-- RPC remove_member: admins remove members ranked no higher than themselves; anyone may leave.
create or replace function public.remove_member(org_id uuid, user_id uuid)
returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
    target_org uuid := remove_member.org_id;
    leaving boolean := remove_member.user_id = auth.uid();
    target_role public.org_role;
    owners integer;
begin
    if not leaving and not private.has_permission(target_org, 'members.manage') then
        raise exception 'you need the members.manage permission (admin or owner) to remove members'
        using errcode = '42501';
    end if;
    perform 1 from public.organizations as o where o.id = target_org for update;
    select m.role into target_role
    from public.memberships as m
    where m.org_id = target_org and m.user_id = remove_member.user_id;
    if target_role is null then
        raise exception 'that user is not a member of this organization' using errcode = 'P0002';
    end if;
    if not leaving and target_role > private.my_role(target_org) then
        raise exception 'you cannot remove a member ranked above you' using errcode = '42501';
    end if;
    if target_role = 'owner' then
        select count(*) into owners from public.memberships as m where m.org_id = target_org and m.role = 'owner';
        if owners <= 1 then
            raise exception 'the last owner cannot be removed; make another member owner first'
            using errcode = '22023';
        end if;
    end if;
    delete from public.memberships as m where m.org_id = target_org and m.user_id = remove_member.user_id;
end
$$;
comment on function public.remove_member(uuid, uuid) is
'Removes a member (members.manage, not ranked above the caller) or lets the caller leave; the last '
'owner stays. Errors: 42501, P0002, 22023.';
revoke all on function public.remove_member(uuid, uuid) from public, anon;
grant execute on function public.remove_member(uuid, uuid) to authenticated, service_role;
