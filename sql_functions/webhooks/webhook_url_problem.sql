-- Private helper webhook_url_problem: why a webhook URL is refused (null when it is acceptable).
-- Checked when an endpoint is created or its URL changed; the worker checks the resolved addresses again.
create or replace function private.webhook_url_problem(url text)
returns text
language plpgsql stable security definer set search_path = ''
as $$
declare
    allow_loopback boolean := private.webhook_setting('webhooks.allow_loopback_http', 'false')::boolean;
    allowed_hosts text[] := array_remove(string_to_array(
        lower(replace(private.webhook_setting('webhooks.allowed_private_hosts', ''), ' ', '')), ','
    ), '');
    parts text[];
    host_port text[];
    scheme text;
    host text;
    address inet;
    kind text;
    listed boolean;
begin
    if url is null or btrim(url) = '' then
        return 'url is required';
    end if;
    if char_length(url) > 2048 then
        return 'url must be at most 2048 characters';
    end if;
    if url ~ '[[:space:][:cntrl:]]' then
        return 'url must not contain spaces or control characters';
    end if;
    parts := regexp_match(url, '^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([/?#].*)?$');
    if parts is null then
        return 'url must be an absolute URL such as https://hooks.example.com/arti';
    end if;
    scheme := lower(parts[1]);
    if scheme not in ('https', 'http') then
        return format('url must use https:// (not %s://)', scheme);
    end if;
    if strpos(parts[2], '@') > 0 then
        return 'url must not contain credentials (user:password@); receivers check the signature instead';
    end if;
    host_port := regexp_match(parts[2], '^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]+))(?::([0-9]{1,5}))?$');
    if host_port is null then
        return 'url has an invalid host or port';
    end if;
    if host_port[3] is not null and host_port[3]::integer not between 1 and 65535 then
        return 'url port must be between 1 and 65535';
    end if;
    host := rtrim(lower(coalesce(host_port[1], host_port[2])), '.');
    if host = '' then
        return 'url has no host';
    end if;
    begin
        address := host::inet;
    exception when invalid_text_representation then
        address := null;
    end;
    if address is null and host_port[1] is not null then
        return format('url has an invalid IPv6 address [%s]', host);
    end if;
    if address is null and host ~ '^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*$' then
        return format('url host %s is a numeric address in a non-standard form; write it as a dotted quad', host);
    end if;
    listed := host = any(allowed_hosts);
    if address is not null then
        kind := private.ip_address_kind(address);
    elsif host = 'localhost' or host like '%.localhost' then
        kind := 'loopback';
    elsif host in ('metadata', 'metadata.google.internal', 'metadata.goog', 'instance-data',
            'instance-data.ec2.internal') then
        kind := 'metadata';
    elsif strpos(host, '.') = 0 or host ~ '\.(internal|local|localdomain|lan|intranet|corp|home\.arpa)$' then
        kind := 'private-name';
    end if;
    if kind = 'metadata' then
        return format('url points at %s, a cloud metadata address; webhooks are never sent there', host);
    end if;
    if kind = 'link-local' then
        return format('url points at %s, a link-local address; webhooks are never sent there', host);
    end if;
    if kind = 'loopback' and not allow_loopback then
        return format('url points at %s, a loopback address (this server); webhooks are sent there only in '
            'development, with the setting webhooks.allow_loopback_http', host);
    end if;
    if kind in ('private', 'reserved') and not listed then
        return format('url points at %s, a private or reserved network address; webhooks are not sent to '
            'internal networks unless the host is listed in the setting webhooks.allowed_private_hosts', host);
    end if;
    if kind = 'private-name' and not listed then
        return format('url host %s is not a public domain name; use a fully qualified public host name, or list '
            'it in the setting webhooks.allowed_private_hosts', host);
    end if;
    if scheme = 'http' and not (coalesce(kind = 'loopback', false) or listed) then
        return 'url must use https:// (http:// is accepted only for loopback in development and for hosts '
            'listed in webhooks.allowed_private_hosts)';
    end if;
    return null;
end
$$;
comment on function private.webhook_url_problem(text) is
'SSRF guard for webhook URLs: why a URL is refused (scheme, credentials, loopback, private, link-local or '
'metadata address, non-public name), or null when it is acceptable. Honours webhooks.allow_loopback_http and '
'webhooks.allowed_private_hosts.';
revoke all on function private.webhook_url_problem(text) from public, anon, authenticated;
