-- RPC create_organization: any signed-in user creates an organization and becomes its owner.
-- The public function runs as the caller; private.create_organization is its privileged step.

-- Slugs are global and unique, so a slug that is used exactly as asked would answer "taken" for other
-- organizations' slugs (an existence oracle), whatever the error says; suffixing only taken ones would say the
-- same through the returned slug. Every slug therefore gets a random 6-character suffix: the answer never depends
-- on other organizations.
create or replace function private.create_organization(name text, slug text default null)
returns public.organizations
language plpgsql volatile security definer set search_path = ''
as $$
declare
    caller uuid := private.caller_id();
    clean_name text := btrim(create_organization.name);
    base_slug text := lower(btrim(create_organization.slug));
    created public.organizations;
begin
    if clean_name is null or char_length(clean_name) not between 1 and 120 then
        raise exception 'organization name must be 1-120 characters' using errcode = '22023';
    end if;
    if base_slug is not null then
        if base_slug !~ '^[a-z0-9](?:[a-z0-9-]{0,39}[a-z0-9])?$' then
            raise exception 'slug must be 1-41 lowercase letters, digits or dashes, not starting or ending with a '
                'dash (a random 6-character suffix is added)'
            using errcode = '22023';
        end if;
    else
        base_slug := left(btrim(regexp_replace(lower(clean_name), '[^a-z0-9]+', '-', 'g'), '-'), 41);
        base_slug := rtrim(base_slug, '-');
        if base_slug = '' then
            base_slug := 'org';
        end if;
    end if;
    for attempt in 1..8 loop
        insert into public.organizations (name, slug, created_by)
        values (clean_name, base_slug || '-' || substr(md5(extensions.gen_random_uuid()::text), 1, 6), caller)
        on conflict on constraint organizations_slug_key do nothing
        returning * into created;
        exit when created.id is not null;
    end loop;
    if created.id is null then
        raise exception 'could not choose a free slug; try again' using errcode = '40001';
    end if;
    insert into public.memberships (org_id, user_id, role) values (created.id, caller, 'owner');
    return created;
end
$$;
comment on function private.create_organization(text, text) is
'Privileged step of public.create_organization: refuses a NULL caller, validates, inserts the organization with '
'slug <handle>-<6 random characters> and the caller as owner. Errors: 42501, 22023.';
revoke all on function private.create_organization(text, text) from public, anon;
grant execute on function private.create_organization(text, text) to authenticated, service_role;

create or replace function public.create_organization(name text, slug text default null)
returns public.organizations
language plpgsql volatile security invoker set search_path = ''
as $$
begin
    return private.create_organization(create_organization.name, create_organization.slug);
end
$$;
comment on function public.create_organization(text, text) is
'Creates an organization with the caller as owner. Its slug is slug (1-41 characters, optional: derived from the '
'name) plus a random 6-character suffix, so the answer reveals nothing about other organizations. Runs as the '
'caller; private.create_organization does the privileged step. Errors: 42501 no signed-in user, 22023 bad input.';
revoke all on function public.create_organization(text, text) from public, anon;
grant execute on function public.create_organization(text, text) to authenticated, service_role;
