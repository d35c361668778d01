-- Private helper webhook_url_problem: why a webhook URL is refused (null when it is acceptable).
-- Checked when an endpoint is created or its URL changed. The host is judged by private.webhook_host_kind and
-- private.webhook_destination_problem, which the delivery job asks again for the URL's host and for every
-- address it resolves to: one rule at both times.
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
    kind text;
    listed boolean;
    problem text;
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
    kind := private.webhook_host_kind(host);
    if host_port[1] is not null and (kind = 'invalid' or strpos(host, ':') = 0) then
        return format('url has an invalid IPv6 address [%s]', host);
    end if;
    listed := host = any(allowed_hosts);
    problem := private.webhook_destination_problem(kind, allow_loopback, listed);
    if problem is not null then
        return format('url points at %s, %s', host, problem);
    end if;
    if scheme = 'http' and not (coalesce(kind = 'loopback', false) or listed) then
        return 'url must use https:// (http:// is accepted only for loopback in development and for hosts '
            'listed in webhooks.allowed_private_hosts)';
    end if;
    return null;
end
$$;
comment on function private.webhook_url_problem(text) is
'SSRF guard for webhook URLs: why a URL is refused (scheme, credentials, a host that is not a global address '
'or public name per webhook_host_kind / ip_address_kind), or null when it is acceptable. Honours '
'webhooks.allow_loopback_http and webhooks.allowed_private_hosts.';
revoke all on function private.webhook_url_problem(text) from public, anon, authenticated;
