-- RPC set_member_role: change a member's role within the rules of rank.
-- The public function runs as the caller; private.set_member_role is its privileged step.

-- Lock first, then read and check (as private.remove_member): an owner demoted concurrently is judged by their
-- new role, so they cannot promote anyone to owner once the demotion has committed.
create or replace function private.set_member_role(org_id uuid, user_id uuid, role public.org_role)
returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
    caller uuid := private.caller_id();
    target_org uuid := set_member_role.org_id;
    target_user uuid := set_member_role.user_id;
    new_role public.org_role := set_member_role.role;
    caller_role public.org_role;
    current_role_of_target public.org_role;
    owners integer;
begin
    if target_org is null or target_user is null or new_role is null then
        raise exception 'org_id, user_id and role are required' using errcode = '22023';
    end if;
    if not private.has_permission(target_org, 'members.manage') then
        raise exception 'you need the members.manage permission (admin or owner) to change roles'
        using errcode = '42501';
    end if;
    -- Serialise role changes of one organization so two owners cannot demote each other at once.
    perform 1 from public.organizations as o where o.id = target_org for no key update;
    caller_role := private.locked_role(target_org, caller);
    if not private.role_has_permission(caller_role, 'members.manage') then
        raise exception 'you need the members.manage permission (admin or owner) to change roles'
        using errcode = '42501';
    end if;
    select m.role into current_role_of_target
    from public.memberships as m
    where m.org_id = target_org and m.user_id = target_user
    for update;
    if current_role_of_target is null then
        raise exception 'that user is not a member of this organization' using errcode = 'P0002';
    end if;
    if new_role > caller_role then
        raise exception 'you cannot grant a role above your own (%)', caller_role using errcode = '42501';
    end if;
    if current_role_of_target > caller_role then
        raise exception 'you cannot change the role of a member ranked above you' using errcode = '42501';
    end if;
    if current_role_of_target = 'owner' and new_role <> 'owner' then
        select count(*) into owners from public.memberships as m where m.org_id = target_org and m.role = 'owner';
        if owners <= 1 then
            raise exception 'the last owner cannot be demoted; make another member owner first'
            using errcode = '22023';
        end if;
    end if;
    update public.memberships as m set role = new_role
    where m.org_id = target_org and m.user_id = target_user;
end
$$;
comment on function private.set_member_role(uuid, uuid, public.org_role) is
'Privileged step of public.set_member_role: refuses a NULL caller and callers without members.manage before '
'locking; then locks the organization row, re-reads the caller''s role under a row lock, checks rank and the last '
'owner, and updates the membership. Errors: 42501, 22023, P0002.';
revoke all on function private.set_member_role(uuid, uuid, public.org_role) from public, anon;
grant execute on function private.set_member_role(uuid, uuid, public.org_role) to authenticated, service_role;

create or replace function public.set_member_role(org_id uuid, user_id uuid, role public.org_role)
returns void
language plpgsql volatile security invoker set search_path = ''
as $$
begin
    perform private.set_member_role(set_member_role.org_id, set_member_role.user_id, set_member_role.role);
end
$$;
comment on function public.set_member_role(uuid, uuid, public.org_role) is
'Changes a member''s role (members.manage; never above the caller''s role; the last owner stays). Runs as the '
'caller; private.set_member_role does the privileged step. Errors: 42501 (also without a signed-in user), P0002, '
'22023.';
revoke all on function public.set_member_role(uuid, uuid, public.org_role) from public, anon;
grant execute on function public.set_member_role(uuid, uuid, public.org_role) to authenticated, service_role;
