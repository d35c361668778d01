-- RPC invite_member: admins invite an email with a role no higher than their own.
-- The public function runs as the caller; private.invite_member is its privileged step.

-- The caller's role is read with their membership row locked until commit: an inviter demoted or removed
-- concurrently is judged by the outcome, and cannot be demoted while their invitation is being written. Their
-- pending invitations die with their standing (trigger memberships_retire_invitations).
create or replace function private.invite_member(
    org_id uuid, email text, role public.org_role default 'viewer'
)
returns jsonb
language plpgsql volatile security definer set search_path = ''
as $$
declare
    caller uuid := private.caller_id();
    target_org uuid := invite_member.org_id;
    invitee text := lower(btrim(invite_member.email));
    caller_role public.org_role;
    token text := encode(extensions.gen_random_bytes(32), 'hex');
    created public.invitations;
begin
    if target_org is null then
        raise exception 'org_id is required' using errcode = '22023';
    end if;
    if not private.has_permission(target_org, 'members.manage') then
        raise exception 'you need the members.manage permission (admin or owner) to invite members'
        using errcode = '42501';
    end if;
    caller_role := private.locked_role(target_org, caller);
    if not private.role_has_permission(caller_role, 'members.manage') then
        raise exception 'you need the members.manage permission (admin or owner) to invite members'
        using errcode = '42501';
    end if;
    if invitee is null or char_length(invitee) > 254 or invitee !~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' then
        raise exception 'email must be a valid address of at most 254 characters' using errcode = '22023';
    end if;
    if invite_member.role is null then
        raise exception 'role is required' using errcode = '22023';
    end if;
    if invite_member.role > caller_role then
        raise exception 'you cannot invite someone with a role above your own (%)', caller_role
        using errcode = '42501';
    end if;
    if exists (
        select 1 from public.memberships as m
        inner join auth.users as u on m.user_id = u.id
        where m.org_id = target_org and lower(u.email) = invitee
    ) then
        raise exception '% is already a member of this organization', invitee using errcode = '23505';
    end if;
    if exists (
        select 1 from public.invitations as i
        where
            i.org_id = target_org and i.email = invitee
            and i.accepted_at is null and i.revoked_at is null and i.expires_at > now()
    ) then
        raise exception '% already has a pending invitation; revoke it first to send a new one', invitee
        using errcode = '23505';
    end if;
    -- An expired, never-accepted invitation for the same email is retired so a new one can be sent.
    update public.invitations as i set revoked_at = now()
    where
        i.org_id = target_org and i.email = invitee
        and i.accepted_at is null and i.revoked_at is null;
    insert into public.invitations (org_id, email, role, invited_by)
    values (target_org, invitee, invite_member.role, caller)
    returning * into created;
    insert into private.invitation_tokens (invitation_id, token_hash)
    values (created.id, extensions.digest(token, 'sha256'));
    return jsonb_build_object(
        'invitation_id', created.id, 'token', token, 'email', created.email,
        'role', created.role, 'expires_at', created.expires_at
    );
end
$$;
comment on function private.invite_member(uuid, text, public.org_role) is
'Privileged step of public.invite_member: refuses a NULL caller and callers without members.manage, re-reads the '
'caller''s role with their membership row locked, then writes the invitation and its token hash. Errors: 42501, '
'22023, 23505.';
revoke all on function private.invite_member(uuid, text, public.org_role) from public, anon;
grant execute on function private.invite_member(uuid, text, public.org_role) to authenticated, service_role;

create or replace function public.invite_member(
    org_id uuid, email text, role public.org_role default 'viewer'
)
returns jsonb
language plpgsql volatile security invoker set search_path = ''
as $$
begin
    return private.invite_member(invite_member.org_id, invite_member.email, invite_member.role);
end
$$;
comment on function public.invite_member(uuid, text, public.org_role) is
'Invites an email to an organization (members.manage; role at most the caller''s). Returns the token '
'once. The invitation is revoked if its sender is removed or demoted below it before it is accepted. Runs as the '
'caller; private.invite_member does the privileged step. Errors: 42501, 22023, 23505.';
revoke all on function public.invite_member(uuid, text, public.org_role) from public, anon;
grant execute on function public.invite_member(uuid, text, public.org_role) to authenticated, service_role;
