-- RPC set_member_role: change a member's role within the rules of rank.
create or replace function public.set_member_role(org_id uuid, user_id uuid, role public.org_role)
returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
    target_org uuid := set_member_role.org_id;
    caller_role public.org_role := private.my_role(target_org);
    current_role_of_target public.org_role;
    owners integer;
begin
    if not private.has_permission(target_org, 'members.manage') then
        raise exception 'you need the members.manage permission (admin or owner) to change roles'
        using errcode = '42501';
    end if;
    if set_member_role.role is null then
        raise exception 'role is required' using errcode = '22023';
    end if;
    -- Serialise role changes of one organization so two owners cannot demote each other at once.
    perform 1 from public.organizations as o where o.id = target_org for update;
    select m.role into current_role_of_target
    from public.memberships as m
    where m.org_id = target_org and m.user_id = set_member_role.user_id;
    if current_role_of_target is null then
        raise exception 'that user is not a member of this organization' using errcode = 'P0002';
    end if;
    if set_member_role.role > caller_role then
        raise exception 'you cannot grant a role above your own (%)', caller_role using errcode = '42501';
    end if;
    if current_role_of_target > caller_role then
        raise exception 'you cannot change the role of a member ranked above you' using errcode = '42501';
    end if;
    if current_role_of_target = 'owner' and set_member_role.role <> 'owner' then
        select count(*) into owners from public.memberships as m where m.org_id = target_org and m.role = 'owner';
        if owners <= 1 then
            raise exception 'the last owner cannot be demoted; make another member owner first'
            using errcode = '22023';
        end if;
    end if;
    update public.memberships as m set role = set_member_role.role
    where m.org_id = target_org and m.user_id = set_member_role.user_id;
end
$$;
comment on function public.set_member_role(uuid, uuid, public.org_role) is
'Changes a member''s role (members.manage; never above the caller''s role; the last owner stays). '
'Errors: 42501, P0002, 22023.';
revoke all on function public.set_member_role(uuid, uuid, public.org_role) from public, anon;
grant execute on function public.set_member_role(uuid, uuid, public.org_role) to authenticated, service_role;
