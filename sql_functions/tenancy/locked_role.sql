-- Private helper locked_role: a member's role, read with their membership row locked (FOR SHARE) until the
-- transaction ends. A concurrent role change or removal of that member either waits for us, or has committed and
-- we read its result (READ COMMITTED re-reads the row after the wait): a role, once checked, holds until commit.
create or replace function private.locked_role(target_org uuid, member uuid)
returns public.org_role
language plpgsql volatile set search_path = ''
as $$
declare
    found public.org_role;
begin
    select m.role into found
    from public.memberships as m
    where m.org_id = target_org and m.user_id = member
    for share;
    return found;
end
$$;
comment on function private.locked_role(uuid, uuid) is
'A member''s role with their membership row locked FOR SHARE until commit (null when not a member). Used by the '
'privileged helpers so that a role is checked and acted on under the same lock.';
revoke all on function private.locked_role(uuid, uuid) from public, anon, authenticated;
