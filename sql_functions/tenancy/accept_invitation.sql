-- RPC accept_invitation: the invited user (signed in with the invited email) joins once.
-- The public function runs as the caller; private.accept_invitation is its privileged step.

-- The sender is checked again at acceptance, with their membership row locked: an invitation is honoured only
-- while its sender is a member who could send it now (members.manage, role at least the invited one).
create or replace function private.accept_invitation(token text)
returns uuid
language plpgsql volatile security definer set search_path = ''
as $$
declare
    caller uuid := private.caller_id();
    invitation public.invitations;
    sender_role public.org_role;
begin
    if accept_invitation.token is null or accept_invitation.token = '' or char_length(accept_invitation.token) > 200
    then
        raise exception 'token is required (at most 200 characters)' using errcode = '22023';
    end if;
    select i.* into invitation
    from public.invitations as i
    inner join private.invitation_tokens as t on i.id = t.invitation_id
    where t.token_hash = extensions.digest(accept_invitation.token, 'sha256');
    if invitation.id is null then
        raise exception 'invitation not found: check the link or ask for a new invitation' using errcode = 'P0002';
    end if;
    if lower(coalesce(auth.email(), '')) <> invitation.email then
        raise exception 'this invitation was sent to another email address; sign in with that address'
        using errcode = '42501';
    end if;
    -- Locks in the order membership changes take them (the sender's membership row, then the invitation, which
    -- the trigger memberships_retire_invitations revokes), so a concurrent demotion never deadlocks with us.
    sender_role := private.locked_role(invitation.org_id, invitation.invited_by);
    select i.* into invitation from public.invitations as i where i.id = invitation.id for update;
    if invitation.accepted_at is not null then
        raise exception 'this invitation has already been used' using errcode = '23505';
    end if;
    if invitation.revoked_at is not null then
        raise exception 'this invitation was revoked; ask an admin for a new one' using errcode = '22023';
    end if;
    if invitation.expires_at <= now() then
        raise exception 'this invitation expired on %; ask an admin for a new one',
            to_char(invitation.expires_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
        using errcode = '22023';
    end if;
    if not private.role_has_permission(sender_role, 'members.manage') or invitation.role > sender_role then
        raise exception 'this invitation is no longer valid: whoever sent it can no longer invite with this role; '
            'ask an admin for a new one'
        using errcode = '22023';
    end if;
    if exists (select 1 from public.memberships as m where m.org_id = invitation.org_id and m.user_id = caller) then
        raise exception 'you are already a member of this organization' using errcode = '23505';
    end if;
    insert into public.memberships (org_id, user_id, role, invited_by)
    values (invitation.org_id, caller, invitation.role, invitation.invited_by);
    update public.invitations set accepted_at = now(), accepted_by = caller where id = invitation.id;
    return invitation.org_id;
end
$$;
comment on function private.accept_invitation(text) is
'Privileged step of public.accept_invitation: refuses a NULL caller, finds the invitation by token hash, checks '
'email, single use, revocation, expiry and that its sender may still grant the role (row-locked), then adds the '
'membership. Errors: 42501, 22023, P0002, 23505.';
revoke all on function private.accept_invitation(text) from public, anon;
grant execute on function private.accept_invitation(text) to authenticated, service_role;

create or replace function public.accept_invitation(token text)
returns uuid
language plpgsql volatile security invoker set search_path = ''
as $$
begin
    return private.accept_invitation(accept_invitation.token);
end
$$;
comment on function public.accept_invitation(text) is
'Accepts an invitation by its token (single use, unexpired, same email, its sender still able to grant the role). '
'Returns the org id. Runs as the caller; private.accept_invitation does the privileged step. Errors: P0002, '
'23505, 22023, 42501.';
revoke all on function public.accept_invitation(text) from public, anon;
grant execute on function public.accept_invitation(text) to authenticated, service_role;
