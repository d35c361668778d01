-- =============================================================================================
-- Migration: rpc_hardening
-- What the tenancy data itself now guarantees (issue 16 items 2, 3, 5; issue 15 item 6). The RPCs
-- themselves live in sql_functions/: every public RPC is security invoker and hands its privileged
-- step to a private twin of the same name (security definer, empty search_path) that refuses a
-- NULL auth.uid() first, takes its locks, then reads roles and checks them.
--   * An invitation is only as good as its sender's current standing: when a member is removed,
--     or their role changes so that they could no longer send one of their pending invitations
--     (the invited role is above their new role, or the new role lacks members.manage), that
--     invitation is revoked in the same transaction (trigger on memberships). accept_invitation
--     checks the sender again, so an invitation whose sender was deleted, or that predates this
--     migration, dies as well. Existing pending invitations that fail the rule are revoked here.
--   * Notifications of an organization are readable, markable and deletable only by its current
--     members: a removed member no longer sees them (nor receives them through Realtime, which
--     applies the select policy). Notifications without an organization stay the user's own.
--   * Organization slugs carry a random suffix chosen by create_organization (the caller's handle
--     or one derived from the name, then -xxxxxx): the answer no longer depends on which slugs
--     other organizations hold, so it is not an oracle on them.
--   * Nothing changes for service_role or the Python code paths (they never went through these
--     RPCs with a user).
-- =============================================================================================

-- ---------------------------------------------------------------------------------------------
-- invitations die with their sender's standing
-- ---------------------------------------------------------------------------------------------
create function private.retire_invitations_of_member() returns trigger
language plpgsql volatile security definer set search_path = ''
as $$
begin
    update public.invitations as i
    set revoked_at = now()
    where
        i.org_id = old.org_id
        and i.invited_by = old.user_id
        and i.accepted_at is null
        and i.revoked_at is null
        and (
            tg_op = 'DELETE'
            or i.role > new.role
            or not exists (
                select 1 from public.role_permissions as rp
                where rp.role = new.role and rp.permission = 'members.manage'
            )
        );
    return null;
end
$$;
comment on function private.retire_invitations_of_member() is
'Trigger on public.memberships: when a member is removed, or demoted so that they could no longer send one '
'of their pending invitations (role above their new role, or no members.manage), that invitation is revoked.';
revoke all on function private.retire_invitations_of_member() from public, anon, authenticated;

create trigger memberships_retire_invitations
after update of role or delete on public.memberships
for each row execute function private.retire_invitations_of_member();

update public.invitations as i
set revoked_at = now()
where
    i.accepted_at is null
    and i.revoked_at is null
    and not exists (
        select 1
        from public.memberships as m
        inner join public.role_permissions as rp on m.role = rp.role and rp.permission = 'members.manage'
        where m.org_id = i.org_id and m.user_id = i.invited_by and m.role >= i.role
    );

comment on column public.invitations.invited_by is
'Who sent the invitation. It stays valid only while they are a member who may still send it (members.manage, '
'role at least the invited one): otherwise it is revoked, and accept_invitation checks again.';
comment on column public.invitations.revoked_at is
'When an admin revoked it, or when its sender was removed or demoted below what it grants.';

-- ---------------------------------------------------------------------------------------------
-- notifications: the recipient, while a member of the organization concerned
-- ---------------------------------------------------------------------------------------------
drop policy notifications_select on public.notifications;
drop policy notifications_update on public.notifications;
drop policy notifications_delete on public.notifications;
create policy notifications_select on public.notifications for select to authenticated
using (user_id = (select auth.uid()) and (org_id is null or org_id in (select private.my_org_ids())));
create policy notifications_update on public.notifications for update to authenticated
using (user_id = (select auth.uid()) and (org_id is null or org_id in (select private.my_org_ids())))
with check (user_id = (select auth.uid()) and (org_id is null or org_id in (select private.my_org_ids())));
create policy notifications_delete on public.notifications for delete to authenticated
using (user_id = (select auth.uid()) and (org_id is null or org_id in (select private.my_org_ids())));
comment on column public.notifications.org_id is
'Organization it concerns, if any: only its current members read such a notification (RLS).';

-- ---------------------------------------------------------------------------------------------
-- organization slugs
-- ---------------------------------------------------------------------------------------------
comment on column public.organizations.slug is
'URL-safe unique handle: the creator''s choice (or one derived from the name) plus a random 6-character '
'suffix, so creating an organization reveals nothing about other organizations'' slugs.';
