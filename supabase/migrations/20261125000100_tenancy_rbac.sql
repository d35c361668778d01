-- =============================================================================================
-- Migration: tenancy and role-based access
-- Organizations, memberships with ranked roles, the role -> permission map, invitations and
-- profiles, with the private helpers every RLS policy of the project calls.
--   * Roles are ranked by the enum order: viewer < analyst < manager < admin < owner.
--   * Memberships and invitations change only through RPCs (sql_functions/tenancy/*), which
--     enforce: nobody grants a role above their own, the last owner stays.
--   * Platform administrators (internal ops staff) carry app_metadata.platform_admin = true in
--     their JWT (app_metadata is writable only with the service role) and may read across orgs.
-- =============================================================================================

create type public.org_role as enum ('viewer', 'analyst', 'manager', 'admin', 'owner');
comment on type public.org_role is
'Membership role, ranked by declaration order: viewer < analyst < manager < admin < owner.';

-- ---------------------------------------------------------------------------------------------
-- organizations
-- ---------------------------------------------------------------------------------------------
create table public.organizations (
    id uuid primary key default extensions.gen_random_uuid(),
    name text not null check (char_length(btrim(name)) between 1 and 120),
    slug text not null unique check (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$'),
    created_by uuid references auth.users (id) on delete set null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table public.organizations is
'A team (label, management company) that manages artists. Every row of data belongs to one.';
comment on column public.organizations.id is 'Organization id.';
comment on column public.organizations.name is 'Display name, 1-120 characters.';
comment on column public.organizations.slug is 'URL-safe unique handle: lowercase letters, digits and dashes.';
comment on column public.organizations.created_by is 'User who created the organization (its first owner).';
comment on column public.organizations.created_at is 'When the organization was created.';
comment on column public.organizations.updated_at is 'When the organization was last changed.';

-- ---------------------------------------------------------------------------------------------
-- memberships
-- ---------------------------------------------------------------------------------------------
create table public.memberships (
    org_id uuid not null references public.organizations (id) on delete cascade,
    user_id uuid not null references auth.users (id) on delete cascade,
    role public.org_role not null default 'viewer',
    invited_by uuid references auth.users (id) on delete set null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (org_id, user_id)
);
create index memberships_user_id_idx on public.memberships (user_id);
comment on table public.memberships is
'Who belongs to which organization, with which role. Changed only through the membership RPCs.';
comment on column public.memberships.org_id is 'The organization.';
comment on column public.memberships.user_id is 'The member (auth.users id).';
comment on column public.memberships.role is 'The member''s role in this organization.';
comment on column public.memberships.invited_by is 'Who invited this member, if they joined by invitation.';
comment on column public.memberships.created_at is 'When the member joined.';
comment on column public.memberships.updated_at is 'When the role last changed.';

-- ---------------------------------------------------------------------------------------------
-- role_permissions: the permission map the UI reads through my_permissions(org_id)
-- ---------------------------------------------------------------------------------------------
create table public.role_permissions (
    role public.org_role not null,
    permission text not null check (permission ~ '^[a-z_]+\.[a-z_]+$'),
    primary key (role, permission)
);
comment on table public.role_permissions is
'Which role holds which permission. Reference data, changed only by migrations.';
comment on column public.role_permissions.role is 'The role.';
comment on column public.role_permissions.permission is 'A permission such as members.manage or sync.run.';

insert into public.role_permissions (role, permission)
select
    r.role,
    p.permission
from (
    values
    ('org.read', 'viewer'),
    ('metrics.read', 'viewer'),
    ('insights.read', 'viewer'),
    ('campaigns.read', 'viewer'),
    ('insights.ask', 'analyst'),
    ('members.read', 'manager'),
    ('artists.edit', 'manager'),
    ('campaigns.edit', 'manager'),
    ('accounts.connect', 'manager'),
    ('sync.run', 'manager'),
    ('members.manage', 'admin'),
    ('webhooks.manage', 'admin'),
    ('settings.manage', 'admin'),
    ('audit.read', 'admin'),
    ('billing.manage', 'owner'),
    ('org.delete', 'owner')
) as p (permission, min_role)
cross join lateral (
    select e.role
    from unnest(enum_range(null::public.org_role)) as e (role)
    where e.role >= p.min_role::public.org_role
) as r;

-- ---------------------------------------------------------------------------------------------
-- invitations (the token itself is never stored; its hash lives in private.invitation_tokens)
-- ---------------------------------------------------------------------------------------------
create table public.invitations (
    id uuid primary key default extensions.gen_random_uuid(),
    org_id uuid not null references public.organizations (id) on delete cascade,
    email text not null check (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$' and email = lower(email)),
    role public.org_role not null default 'viewer',
    invited_by uuid references auth.users (id) on delete set null,
    expires_at timestamptz not null default now() + interval '7 days',
    accepted_at timestamptz,
    accepted_by uuid references auth.users (id) on delete set null,
    revoked_at timestamptz,
    created_at timestamptz not null default now()
);
create unique index invitations_pending_email_idx on public.invitations (org_id, email)
where accepted_at is null and revoked_at is null;
create index invitations_org_id_idx on public.invitations (org_id);
comment on table public.invitations is 'Invitations to join an organization: single use, expiring, revocable.';
comment on column public.invitations.id is 'Invitation id.';
comment on column public.invitations.org_id is 'The organization the invitee will join.';
comment on column public.invitations.email is 'Invitee email (lowercase); only a user signed in with it can accept.';
comment on column public.invitations.role is 'Role granted on acceptance.';
comment on column public.invitations.invited_by is 'Who sent the invitation.';
comment on column public.invitations.expires_at is 'After this the invitation cannot be accepted.';
comment on column public.invitations.accepted_at is 'When it was accepted (single use).';
comment on column public.invitations.accepted_by is 'Who accepted it.';
comment on column public.invitations.revoked_at is 'When an admin revoked it.';
comment on column public.invitations.created_at is 'When it was sent.';

create table private.invitation_tokens (
    invitation_id uuid primary key references public.invitations (id) on delete cascade,
    token_hash bytea not null unique
);
comment on table private.invitation_tokens is
'SHA-256 of each invitation token; the token is shown once, never stored.';
comment on column private.invitation_tokens.invitation_id is 'The invitation.';
comment on column private.invitation_tokens.token_hash is 'sha256(token).';

-- ---------------------------------------------------------------------------------------------
-- profiles (one per auth user, maintained by a trigger on auth.users)
-- ---------------------------------------------------------------------------------------------
create table public.profiles (
    id uuid primary key references auth.users (id) on delete cascade,
    full_name text check (char_length(full_name) <= 200),
    avatar_url text check (avatar_url ~ '^https?://'),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
comment on table public.profiles is 'Public profile of each user, created from sign-up metadata.';
comment on column public.profiles.id is 'The user (auth.users id).';
comment on column public.profiles.full_name is 'Display name (from user metadata full_name or name).';
comment on column public.profiles.avatar_url is 'Avatar image URL (from user metadata avatar_url or picture).';
comment on column public.profiles.created_at is 'When the profile was created.';
comment on column public.profiles.updated_at is 'When the profile last changed.';

-- ---------------------------------------------------------------------------------------------
-- private helpers called by policies: security definer, stable, empty search_path
-- ---------------------------------------------------------------------------------------------
create function private.is_platform_admin() returns boolean
language sql stable security definer set search_path = ''
as $$
    select coalesce(auth.jwt() -> 'app_metadata' -> 'platform_admin' = 'true'::jsonb, false)
$$;
comment on function private.is_platform_admin() is
'True when the caller''s JWT marks them as ARTi platform staff (app_metadata.platform_admin is JSON true).';

create function private.my_org_ids() returns setof uuid
language sql stable security definer set search_path = ''
as $$
    select m.org_id from public.memberships as m where m.user_id = auth.uid()
$$;
comment on function private.my_org_ids() is 'Organizations the caller belongs to.';

create function private.my_role(target_org uuid) returns public.org_role
language sql stable security definer set search_path = ''
as $$
    select m.role from public.memberships as m where m.org_id = target_org and m.user_id = auth.uid()
$$;
comment on function private.my_role(uuid) is 'The caller''s role in an organization, or null.';

create function private.has_permission(target_org uuid, wanted text) returns boolean
language sql stable security definer set search_path = ''
as $$
    select exists (
        select 1
        from public.memberships as m
        inner join public.role_permissions as rp on m.role = rp.role
        where m.org_id = target_org and m.user_id = auth.uid() and rp.permission = wanted
    )
$$;
comment on function private.has_permission(uuid, text) is 'True when the caller holds a permission in an organization.';

create function private.org_ids_with_permission(wanted text) returns setof uuid
language sql stable security definer set search_path = ''
as $$
    select m.org_id
    from public.memberships as m
    inner join public.role_permissions as rp on m.role = rp.role
    where m.user_id = auth.uid() and rp.permission = wanted
$$;
comment on function private.org_ids_with_permission(text) is
'Organizations in which the caller holds a permission (for policies over many rows).';

create function private.shares_org_with(other_user uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
    select exists (
        select 1
        from public.memberships as mine
        inner join public.memberships as theirs on mine.org_id = theirs.org_id
        where mine.user_id = auth.uid() and theirs.user_id = other_user
    )
$$;
comment on function private.shares_org_with(uuid) is
'True when the caller and another user are members of a common organization.';

create function private.touch_updated_at() returns trigger
language plpgsql set search_path = ''
as $$
begin
    new.updated_at := now();
    return new;
end
$$;
comment on function private.touch_updated_at() is 'Trigger: keeps updated_at current on every update.';

create trigger organizations_touch before update on public.organizations
for each row execute function private.touch_updated_at();
create trigger memberships_touch before update on public.memberships
for each row execute function private.touch_updated_at();
create trigger profiles_touch before update on public.profiles
for each row execute function private.touch_updated_at();

create function private.sync_profile_from_auth_user() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
    meta jsonb := coalesce(new.raw_user_meta_data, '{}'::jsonb);
    avatar text := coalesce(meta ->> 'avatar_url', meta ->> 'picture');
begin
    insert into public.profiles (id, full_name, avatar_url)
    values (
        new.id,
        left(coalesce(meta ->> 'full_name', meta ->> 'name'), 200),
        case when avatar ~ '^https?://' then avatar end
    )
    on conflict (id) do update
        set full_name = excluded.full_name, avatar_url = excluded.avatar_url;
    return new;
end
$$;
comment on function private.sync_profile_from_auth_user() is
'Trigger on auth.users: creates or refreshes the user''s profile from their metadata.';

create trigger on_auth_user_saved_sync_profile
after insert or update of raw_user_meta_data on auth.users
for each row execute function private.sync_profile_from_auth_user();

-- Schema-level default privileges cannot take back PostgreSQL's global EXECUTE-to-PUBLIC default,
-- so private functions are closed explicitly; only the policy helpers above are granted.
revoke execute on all functions in schema private from public;
grant execute on function private.is_platform_admin(), private.my_org_ids(), private.my_role(uuid),
private.has_permission(uuid, text), private.org_ids_with_permission(text), private.shares_org_with(uuid)
to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- RLS: explicit per-command policies, to authenticated only; anon gets nothing
-- ---------------------------------------------------------------------------------------------
alter table public.organizations enable row level security;
alter table public.memberships enable row level security;
alter table public.role_permissions enable row level security;
alter table public.invitations enable row level security;
alter table public.profiles enable row level security;
alter table private.invitation_tokens enable row level security;

create policy organizations_select on public.organizations for select to authenticated
using (id in (select private.my_org_ids()) or (select private.is_platform_admin()));
create policy organizations_update on public.organizations for update to authenticated
using (id in (select private.org_ids_with_permission('settings.manage')))
with check (id in (select private.org_ids_with_permission('settings.manage')));
create policy organizations_delete on public.organizations for delete to authenticated
using (id in (select private.org_ids_with_permission('org.delete')));

create policy memberships_select on public.memberships for select to authenticated
using (org_id in (select private.my_org_ids()) or (select private.is_platform_admin()));

create policy role_permissions_select on public.role_permissions for select to authenticated
using (true);

create policy invitations_select on public.invitations for select to authenticated
using (org_id in (select private.org_ids_with_permission('members.manage')));

create policy profiles_select on public.profiles for select to authenticated
using (
    id = (select auth.uid())
    or (select private.shares_org_with(id))
    or (select private.is_platform_admin())
);
create policy profiles_update on public.profiles for update to authenticated
using (id = (select auth.uid()))
with check (id = (select auth.uid()));

-- Column-level: users edit only their display fields; ids and timestamps are the system's.
revoke insert, update, delete, truncate, references, trigger on public.profiles from anon, authenticated;
grant update (full_name, avatar_url) on public.profiles to authenticated;
revoke all on public.organizations, public.memberships, public.role_permissions, public.invitations
from anon;
revoke insert, update, truncate, references, trigger on public.organizations from authenticated;
grant update (name) on public.organizations to authenticated;
revoke insert, update, delete, truncate, references, trigger
on public.memberships, public.role_permissions, public.invitations from authenticated;
revoke all on public.profiles from anon;
