-- RPC revoke_invitation: admins cancel a pending invitation.
-- The public function runs as the caller; private.revoke_invitation is its privileged step.
create or replace function private.revoke_invitation(invitation_id uuid)
returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
    caller uuid := private.caller_id();
    target_org uuid;
    invitation public.invitations;
begin
    if revoke_invitation.invitation_id is null then
        raise exception 'invitation_id is required' using errcode = '22023';
    end if;
    select i.org_id into target_org from public.invitations as i where i.id = revoke_invitation.invitation_id;
    -- Someone else's invitation is "not found": its existence is not revealed.
    if target_org is null or not private.has_permission(target_org, 'members.manage') then
        raise exception 'invitation not found' using errcode = 'P0002';
    end if;
    if not private.role_has_permission(private.locked_role(target_org, caller), 'members.manage') then
        raise exception 'invitation not found' using errcode = 'P0002';
    end if;
    select i.* into invitation from public.invitations as i where i.id = revoke_invitation.invitation_id for update;
    if invitation.accepted_at is not null then
        raise exception 'this invitation was already accepted; remove the member instead' using errcode = '22023';
    end if;
    update public.invitations set revoked_at = coalesce(revoked_at, now()) where id = invitation.id;
end
$$;
comment on function private.revoke_invitation(uuid) is
'Privileged step of public.revoke_invitation: refuses a NULL caller, checks members.manage in the invitation''s '
'organization with the caller''s membership row locked, then revokes it. Errors: 42501, 22023, P0002.';
revoke all on function private.revoke_invitation(uuid) from public, anon;
grant execute on function private.revoke_invitation(uuid) to authenticated, service_role;

create or replace function public.revoke_invitation(invitation_id uuid)
returns void
language plpgsql volatile security invoker set search_path = ''
as $$
begin
    perform private.revoke_invitation(revoke_invitation.invitation_id);
end
$$;
comment on function public.revoke_invitation(uuid) is
'Revokes a pending invitation (members.manage). Runs as the caller; private.revoke_invitation does the privileged '
'step. Errors: 42501 no signed-in user, P0002 not found, 22023 already accepted or no id.';
revoke all on function public.revoke_invitation(uuid) from public, anon;
grant execute on function public.revoke_invitation(uuid) to authenticated, service_role;
