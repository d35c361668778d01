-- RPC accept_invitation: the invited user (signed in with the invited email) joins once.
create or replace function public.accept_invitation(token text)
returns uuid
language plpgsql volatile security definer set search_path = ''
as $$
declare
    caller uuid := auth.uid();
    invitation public.invitations;
begin
    if caller is null then
        raise exception 'sign in to accept an invitation' using errcode = '42501';
    end if;
    select i.* into invitation
    from public.invitations as i
    inner join private.invitation_tokens as t on i.id = t.invitation_id
    where t.token_hash = extensions.digest(coalesce(accept_invitation.token, ''), 'sha256')
    for update of i;
    if invitation.id is null then
        raise exception 'invitation not found: check the link or ask for a new invitation' using errcode = 'P0002';
    end if;
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
    if lower(coalesce(auth.email(), '')) <> invitation.email then
        raise exception 'this invitation was sent to another email address; sign in with that address'
        using errcode = '42501';
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
comment on function public.accept_invitation(text) is
'Accepts an invitation by its token (single use, unexpired, same email). Returns the org id. Errors: '
'P0002, 23505, 22023, 42501.';
revoke all on function public.accept_invitation(text) from public, anon;
grant execute on function public.accept_invitation(text) to authenticated, service_role;
