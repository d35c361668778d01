-- Private helper webhook_host_kind: what a webhook URL's host is, for the SSRF guard. Used when a URL is saved
-- (webhook_url_problem) and again by the delivery job (jobs/webhooks.py) before it resolves the name.
-- Addresses are classified by private.ip_address_kind. A host that is not a canonical address but that an IPv4
-- parser would read as one (the WHATWG URL rule "ends in a number": last label all digits or 0x-hex, e.g.
-- 0177.0.0.1, 2130706433, 0x7f.1, 127.1; libc's inet_aton reads the same octal/hex/short forms) is 'numeric'.
-- Anything that is not an ASCII host name (percent-encoding, full-width digits, ideographic dots...) is 'invalid'.
create or replace function private.webhook_host_kind(host text)
returns text
language plpgsql immutable set search_path = ''
as $$
declare
    name text := rtrim(lower(host), '.');
    octet constant text := '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
    label constant text := '[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?';
    address inet;
begin
    if name is null or name = '' then
        return 'invalid';
    end if;
    if strpos(name, ':') > 0 then
        -- IPv6, written [in brackets] in a URL; unambiguous, so any valid spelling is classified.
        if name !~ '^[0-9a-f:.]+$' then
            return 'invalid';
        end if;
        begin
            address := name::inet;
        exception when invalid_text_representation then
            return 'invalid';
        end;
        return private.ip_address_kind(address);
    end if;
    if name ~ ('^' || octet || '(\.' || octet || '){3}$') then
        return private.ip_address_kind(name::inet);
    end if;
    if substring(name from '[^.]*$') ~ '^([0-9]+|0x[0-9a-f]*)$' then
        return 'numeric';
    end if;
    if char_length(name) > 253 or name !~ ('^(' || label || '\.)*' || label || '$') then
        return 'invalid';
    end if;
    if name = 'localhost' or name like '%.localhost' then
        return 'loopback';
    end if;
    if name in (
        'metadata', 'metadata.google.internal', 'metadata.goog', 'instance-data', 'instance-data.ec2.internal'
    ) then
        return 'metadata';
    end if;
    if strpos(name, '.') = 0 or name ~ '\.(internal|local|localdomain|lan|intranet|corp|home\.arpa)$' then
        return 'private-name';
    end if;
    return null;
end
$$;
comment on function private.webhook_host_kind(text) is
'Webhook SSRF guard: the kind of a URL host (lower-cased or not, without brackets): for an address its '
'private.ip_address_kind; numeric for a non-canonical numeric form an IPv4 parser would read as an address '
'(0177.0.0.1, 2130706433, 0x7f.1, 127.1); invalid when it is not an ASCII host name; loopback (localhost), '
'metadata or private-name for names; null for a global address or a public name.';
revoke all on function private.webhook_host_kind(text) from public, anon, authenticated;
