-- Private helper ip_address_kind: the webhook SSRF address rule, the only copy. The save path
-- (webhook_url_problem via webhook_host_kind) and the delivery job (jobs/webhooks.py, for every address a host
-- resolves to) both ask this function. An allow-list after IANA's special-purpose address registries
-- (RFC 6890 and later): only global unicast gets null.
--   IPv6: global only inside 2000::/3 and outside its non-global blocks; everything else is refused, including
--   the forms that carry an IPv4 address (IPv4-compatible ::/96, mapped ::ffff:0:0/96, SIIT ::ffff:0:0:0/96,
--   NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4 2002::/16, Teredo 2001::/32) whatever that IPv4 address is.
--   IPv4: every non-global special-purpose block, multicast and 240/4 are refused.
create or replace function private.ip_address_kind(address inet)
returns text
language plpgsql immutable set search_path = ''
as $$
declare
    ip inet := host(address)::inet;
begin
    if ip is null then
        return 'reserved';  -- fail closed: null never means global
    end if;
    if family(ip) = 4 then
        if ip in ('169.254.169.254'::inet, '100.100.100.200'::inet) then
            return 'metadata';
        elsif ip << '127.0.0.0/8'::inet then
            return 'loopback';
        elsif ip << '169.254.0.0/16'::inet then
            return 'link-local';
        elsif ip << any('{10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10}'::inet []) then
            return 'private';
        elsif ip << any(
            '{0.0.0.0/8, 192.0.0.0/24, 192.0.2.0/24, 192.88.99.0/24, 198.18.0.0/15, 198.51.100.0/24, '
            '203.0.113.0/24, 224.0.0.0/4, 240.0.0.0/4}'::inet []
        ) then
            return 'reserved';  -- 240.0.0.0/4 includes the limited broadcast 255.255.255.255
        end if;
        return null;
    end if;
    if ip = 'fd00:ec2::254'::inet then
        return 'metadata';
    elsif ip = '::1'::inet then
        return 'loopback';
    elsif ip = '::'::inet then
        return 'reserved';
    elsif ip << 'fe80::/10'::inet then
        return 'link-local';
    elsif ip << 'fc00::/7'::inet then
        return 'private';
    elsif ip << any(
        '{::/96, ::ffff:0:0/96, ::ffff:0:0:0/96, 64:ff9b::/96, 64:ff9b:1::/48, 2002::/16, 2001::/32}'::inet []
    ) then
        return 'embedded-ipv4';
    elsif
        not ip << '2000::/3'::inet
        or ip << any('{2001::/23, 2001:db8::/32, 3fff::/20, 5f00::/16}'::inet [])
    then
        return 'reserved';
    end if;
    return null;
end
$$;
comment on function private.ip_address_kind(inet) is
'Webhook SSRF guard, the one address rule (save time and delivery): null for a global unicast address, else '
'metadata, loopback, link-local, private, embedded-ipv4 (IPv4 carried in IPv6: ::/96, ::ffff:0:0/96, '
'::ffff:0:0:0/96, 64:ff9b::/96, 64:ff9b:1::/48, 2002::/16, 2001::/32) or reserved (any other non-global '
'special-purpose block, and all IPv6 outside 2000::/3).';
revoke all on function private.ip_address_kind(inet) from public, anon, authenticated;
