-- RPC revoke_invitation: admins cancel a pending invitation.
create or replace function public.revoke_invitation(invitation_id uuid)
returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
    invitation public.invitations;
begin
    select i.* into invitation from public.invitations as i where i.id = revoke_invitation.invitation_id for update;
    if invitation.id is null or not private.has_permission(invitation.org_id, 'members.manage') then
        raise exception 'invitation not found' using errcode = 'P0002';
    end if;
    if invitation.accepted_at is not null then
        raise exception 'this invitation was already accepted; remove the member instead' using errcode = '22023';
    end if;
    update public.invitations set revoked_at = coalesce(revoked_at, now()) where id = invitation.id;
end
$$;
comment on function public.revoke_invitation(uuid) is
'Revokes a pending invitation (members.manage). Errors: P0002 not found, 22023 already accepted.';
revoke all on function public.revoke_invitation(uuid) from public, anon;
grant execute on function public.revoke_invitation(uuid) to authenticated, service_role;
