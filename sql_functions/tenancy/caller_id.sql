-- Private helper caller_id: the signed-in user of this request, or 42501. Every privileged step starts here, so a
-- request without a user (anon, service_role, a signed token without `sub`) is refused before anything is read,
-- locked or compared: no permission test downstream can see a NULL caller.
create or replace function private.caller_id()
returns uuid
language plpgsql stable set search_path = ''
as $$
declare
    caller uuid := auth.uid();
begin
    if caller is null then
        raise exception 'sign in first: this request carries no user (its token has no sub claim)'
        using errcode = '42501';
    end if;
    return caller;
end
$$;
comment on function private.caller_id() is
'The caller''s user id (auth.uid()); 42501 when the request has none. Called first by every privileged helper.';
revoke all on function private.caller_id() from public, anon, authenticated;
