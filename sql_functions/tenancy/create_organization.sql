-- RPC create_organization: any signed-in user creates an organization and becomes its owner.
create or replace function public.create_organization(name text, slug text default null)
returns public.organizations
language plpgsql volatile security definer set search_path = ''
as $$
declare
    caller uuid := auth.uid();
    clean_name text := btrim(name);
    base_slug text;
    chosen_slug text := lower(btrim(slug));
    created public.organizations;
begin
    if caller is null then
        raise exception 'sign in to create an organization' using errcode = '42501';
    end if;
    if clean_name is null or char_length(clean_name) not between 1 and 120 then
        raise exception 'organization name must be 1-120 characters' using errcode = '22023';
    end if;
    if chosen_slug is not null then
        if chosen_slug !~ '^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$' then
            raise exception 'slug must be 1-48 lowercase letters, digits or dashes, not starting or ending with a dash'
            using errcode = '22023';
        end if;
        if exists (select 1 from public.organizations as o where o.slug = chosen_slug) then
            raise exception 'the slug "%" is already taken; choose another', chosen_slug using errcode = '23505';
        end if;
    else
        base_slug := left(btrim(regexp_replace(lower(clean_name), '[^a-z0-9]+', '-', 'g'), '-'), 40);
        if base_slug = '' then
            base_slug := 'org';
        end if;
        chosen_slug := base_slug;
        while exists (select 1 from public.organizations as o where o.slug = chosen_slug) loop
            chosen_slug := base_slug || '-' || substr(md5(extensions.gen_random_uuid()::text), 1, 6);
        end loop;
    end if;
    insert into public.organizations (name, slug, created_by)
    values (clean_name, chosen_slug, caller)
    returning * into created;
    insert into public.memberships (org_id, user_id, role) values (created.id, caller, 'owner');
    return created;
end
$$;
comment on function public.create_organization(text, text) is
'Creates an organization with the caller as owner. slug is optional (derived from the name). Errors: '
'22023 bad input, 23505 slug taken.';
revoke all on function public.create_organization(text, text) from public, anon;
grant execute on function public.create_organization(text, text) to authenticated, service_role;
