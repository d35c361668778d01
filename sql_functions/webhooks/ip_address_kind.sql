-- Private helper ip_address_kind: the guarded range an address belongs to (webhook SSRF guard).
-- jobs/webhooks.py classifies resolved addresses with the same table at delivery time.
create or replace function private.ip_address_kind(address inet)
returns text
language plpgsql immutable set search_path = ''
as $$
declare
    ip inet := host(address)::inet;
begin
    if family(ip) = 6 then
        -- IPv4 carried in IPv6 (mapped ::ffff:0:0/96, NAT64 64:ff9b::/96) is judged as that IPv4 address.
        if ip << '::ffff:0:0/96'::inet then
            return private.ip_address_kind('0.0.0.0'::inet + (ip - '::ffff:0.0.0.0'::inet));
        end if;
        if ip << '64:ff9b::/96'::inet then
            return private.ip_address_kind('0.0.0.0'::inet + (ip - '64:ff9b::'::inet));
        end if;
        if ip = 'fd00:ec2::254'::inet then
            return 'metadata';
        end if;
        if ip = '::1'::inet then
            return 'loopback';
        end if;
        if ip << 'fe80::/10'::inet then
            return 'link-local';
        end if;
        if ip << 'fc00::/7'::inet then
            return 'private';
        end if;
        if
            ip = '::'::inet or ip << 'ff00::/8'::inet or ip << '2001:db8::/32'::inet or ip << '2002::/16'::inet
            or ip << '2001::/32'::inet or ip << '100::/64'::inet
        then
            return 'reserved';
        end if;
        return null;
    end if;
    if ip in ('169.254.169.254'::inet, '100.100.100.200'::inet) then
        return 'metadata';
    end if;
    if ip << '127.0.0.0/8'::inet then
        return 'loopback';
    end if;
    if ip << '169.254.0.0/16'::inet then
        return 'link-local';
    end if;
    if
        ip << '10.0.0.0/8'::inet or ip << '172.16.0.0/12'::inet or ip << '192.168.0.0/16'::inet
        or ip << '100.64.0.0/10'::inet
    then
        return 'private';
    end if;
    if
        ip << '0.0.0.0/8'::inet or ip << '192.0.0.0/24'::inet or ip << '192.0.2.0/24'::inet
        or ip << '198.18.0.0/15'::inet or ip << '198.51.100.0/24'::inet or ip << '203.0.113.0/24'::inet
        or ip << '224.0.0.0/4'::inet or ip << '240.0.0.0/4'::inet
    then
        return 'reserved';
    end if;
    return null;
end
$$;
comment on function private.ip_address_kind(inet) is
'SSRF guard: metadata, loopback, link-local, private or reserved for a guarded address, null for a public one. '
'IPv4-mapped and NAT64 IPv6 addresses are judged by their IPv4 address.';
revoke all on function private.ip_address_kind(inet) from public, anon, authenticated;
