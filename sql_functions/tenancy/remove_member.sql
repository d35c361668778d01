-- RPC remove_member: admins remove members ranked no higher than themselves; anyone may leave.
-- The public function runs as the caller; private.remove_member is its privileged step.

-- Lock first, then read and check: the organization row is locked (FOR NO KEY UPDATE, which serialises the
-- membership RPCs of one organization without blocking inserts that reference it) before the caller's role is
-- read, under a row lock of its own. A caller being removed or demoted concurrently is judged by the outcome.
-- Who may not act at all (no user, not a member, no members.manage) is refused before any lock is taken.
create or replace function private.remove_member(org_id uuid, user_id uuid)
returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
    caller uuid := private.caller_id();
    target_org uuid := remove_member.org_id;
    target_user uuid := remove_member.user_id;
    leaving boolean;
    caller_role public.org_role;
    target_role public.org_role;
    owners integer;
begin
    if private.my_role(target_org) is null then
        raise exception 'you are not a member of this organization' using errcode = '42501';
    end if;
    if target_user is null then
        raise exception 'user_id is required' using errcode = '22023';
    end if;
    leaving := target_user = caller;
    if not leaving and not private.has_permission(target_org, 'members.manage') then
        raise exception 'you need the members.manage permission (admin or owner) to remove members'
        using errcode = '42501';
    end if;
    perform 1 from public.organizations as o where o.id = target_org for no key update;
    caller_role := private.locked_role(target_org, caller);
    if caller_role is null then
        raise exception 'you are not a member of this organization' using errcode = '42501';
    end if;
    if not leaving and not private.role_has_permission(caller_role, 'members.manage') then
        raise exception 'you need the members.manage permission (admin or owner) to remove members'
        using errcode = '42501';
    end if;
    select m.role into target_role
    from public.memberships as m
    where m.org_id = target_org and m.user_id = target_user
    for update;
    if target_role is null then
        raise exception 'that user is not a member of this organization' using errcode = 'P0002';
    end if;
    if not leaving and target_role > caller_role then
        raise exception 'you cannot remove a member ranked above you' using errcode = '42501';
    end if;
    if target_role = 'owner' then
        select count(*) into owners from public.memberships as m where m.org_id = target_org and m.role = 'owner';
        if owners <= 1 then
            raise exception 'the last owner cannot be removed; make another member owner first'
            using errcode = '22023';
        end if;
    end if;
    delete from public.memberships as m where m.org_id = target_org and m.user_id = target_user;
end
$$;
comment on function private.remove_member(uuid, uuid) is
'Privileged step of public.remove_member: refuses a NULL caller, non-members and callers without members.manage '
'before locking; then locks the organization row, re-reads the caller''s role under a row lock, checks rank and '
'the last owner, and deletes the membership. Errors: 42501, 22023, P0002.';
revoke all on function private.remove_member(uuid, uuid) from public, anon;
grant execute on function private.remove_member(uuid, uuid) to authenticated, service_role;

create or replace function public.remove_member(org_id uuid, user_id uuid)
returns void
language plpgsql volatile security invoker set search_path = ''
as $$
begin
    perform private.remove_member(remove_member.org_id, remove_member.user_id);
end
$$;
comment on function public.remove_member(uuid, uuid) is
'Removes a member (members.manage, not ranked above the caller) or lets the caller leave; the last '
'owner stays. Runs as the caller; private.remove_member does the privileged step. Errors: 42501 (also when '
'there is no signed-in user), P0002, 22023.';
revoke all on function public.remove_member(uuid, uuid) from public, anon;
grant execute on function public.remove_member(uuid, uuid) to authenticated, service_role;
