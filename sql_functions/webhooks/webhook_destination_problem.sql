-- Private helper webhook_destination_problem: whether webhooks may go to a host or address of a given kind
-- (from private.webhook_host_kind or private.ip_address_kind), and why not. Shared by the save path
-- (webhook_url_problem) and the delivery job (jobs/webhooks.py), so both refuse with the same rule and words.
create or replace function private.webhook_destination_problem(kind text, allow_loopback boolean, listed boolean)
returns text
language sql immutable set search_path = ''
as $$
    select case
        when kind is null then null
        when kind = 'loopback' and allow_loopback then null
        when kind in ('private', 'private-name') and listed then null
        when kind = 'metadata' then 'a cloud metadata address; webhooks are never sent there'
        when kind = 'link-local' then 'a link-local address; webhooks are never sent there'
        when kind = 'embedded-ipv4' then
            'an IPv6 address that embeds an IPv4 address (IPv4-compatible, IPv4-mapped, SIIT, NAT64, 6to4 or '
            'Teredo); webhooks are never sent there, use the IPv4 address or a host name'
        when kind = 'reserved' then
            'a special-purpose address that is not globally routable; webhooks are never sent there'
        when kind = 'numeric' then
            'a numeric host in a non-standard form that URL parsers read as an IPv4 address; write the address '
            'in canonical dotted-decimal form (four numbers 0-255 without leading zeros) or use a host name'
        when kind = 'invalid' then
            'not a valid host name; use ASCII letters, digits, hyphens and dots (international names in their '
            'xn-- form)'
        when kind = 'loopback' then
            'a loopback address (this server); webhooks are sent there only in development, with the setting '
            'webhooks.allow_loopback_http'
        when kind = 'private' then
            'a private network address; webhooks are not sent to internal networks unless the host is listed '
            'in the setting webhooks.allowed_private_hosts'
        when kind = 'private-name' then
            'not a public domain name; use a fully qualified public host name, or list it in the setting '
            'webhooks.allowed_private_hosts'
        else format('an address of kind %s; webhooks are never sent there', kind)
    end
$$;
comment on function private.webhook_destination_problem(text, boolean, boolean) is
'Webhook SSRF guard policy: null when a host or address of this kind may receive webhooks (global; loopback '
'only with webhooks.allow_loopback_http; private addresses and names only for a host listed in '
'webhooks.allowed_private_hosts), else the reason. metadata, link-local, embedded-ipv4, reserved, numeric and '
'invalid are never allowed; an unknown kind is refused.';
revoke all on function private.webhook_destination_problem(text, boolean, boolean) from public, anon, authenticated;
