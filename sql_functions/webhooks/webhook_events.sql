-- Private helper webhook_events: validates and normalises the event list of an endpoint.
create or replace function private.webhook_events(requested text[])
returns text[]
language plpgsql stable security definer set search_path = ''
as $$
declare
    known text[] := array(select t.name from public.webhook_event_types as t order by t.name);
    wanted text[] := array(
        select distinct lower(btrim(e.name)) from unnest(requested) as e (name) where e.name is not null
        order by 1
    );
    unknown text[];
begin
    -- Bounded before anything is echoed back: at most 50 names of at most 63 characters.
    if cardinality(requested) > 50 then
        raise exception 'at most 50 event types may be listed' using errcode = '22023';
    end if;
    if exists (select 1 from unnest(requested) as e (name) where char_length(e.name) > 63) then
        raise exception 'an event type name is at most 63 characters' using errcode = '22023';
    end if;
    if cardinality(wanted) = 0 then
        raise exception 'choose at least one event: %', array_to_string(known, ', ') using errcode = '22023';
    end if;
    unknown := array(select w.name from unnest(wanted) as w (name) where w.name <> all(known));
    if cardinality(unknown) > 0 then
        raise exception 'unknown event type(s): %; known events are: %',
            array_to_string(unknown, ', '), array_to_string(known, ', ')
        using errcode = '22023';
    end if;
    return wanted;
end
$$;
comment on function private.webhook_events(text[]) is
'The distinct, sorted event types of a subscription; 22023 when empty, when one is unknown, or beyond 50 names '
'of 63 characters.';
revoke all on function private.webhook_events(text[]) from public, anon, authenticated;
