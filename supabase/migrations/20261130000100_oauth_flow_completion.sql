-- =============================================================================================
-- Migration: an OAuth flow completes only for the user who started it; old flows are pruned
--   * The callback carries no JWT (the browser returns from the provider), so the state alone
--     decided whose flow finished: an attacker could start a flow, lure a victim into consenting
--     with the attacker's state, and the victim's provider account and tokens landed in the
--     attacker's organization (RFC 9700 4.7: bind the flow to the user agent that started it).
--   * The callback now parks what it obtained in private.oauth_pending_connections: the token
--     set (encrypted by the application) and the identity, with a one-time completion secret of
--     which only sha256 is stored, expiring after 10 minutes. Only the browser that went through
--     the provider's consent receives the secret (in its redirect to the frontend).
--   * POST /functions/v1/oauth/{provider}/complete, with the user's JWT and the secret, consumes
--     the parked row (single use) and connects the account only when the JWT's user started the
--     flow; otherwise the parked tokens are destroyed (and revoked at the provider where it has an
--     endpoint). A consumed row keeps no tokens, only its outcome.
--   * private.prune_oauth_flows() deletes expired parked connections and states expired for more
--     than a day (neither was ever pruned), every 5 minutes by pg_cron (`arti-prune-oauth-flows`).
-- =============================================================================================

create table private.oauth_pending_connections (
    id uuid primary key default extensions.gen_random_uuid(),
    state_id uuid not null unique references private.oauth_states (id) on delete cascade,
    completion_hash bytea not null unique,
    external_id text not null,
    display_name text,
    tokens_encrypted text,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null default now() + interval '10 minutes',
    consumed_at timestamptz,
    outcome text check (outcome in (
        'connected', 'state_user_mismatch', 'forbidden', 'user_inactive', 'artist_not_found', 'unreadable'
    )),
    constraint oauth_pending_connections_consumed_holds_no_tokens check (
        (consumed_at is null and tokens_encrypted is not null and outcome is null)
        or (consumed_at is not null and tokens_encrypted is null and outcome is not null)
    )
);
comment on table private.oauth_pending_connections is
'Results of OAuth callbacks waiting for the user who started the flow to complete them (single use, 10 minutes).';
comment on column private.oauth_pending_connections.id is 'Parked connection id.';
comment on column private.oauth_pending_connections.state_id is
'The consumed OAuth state: user, organization, artist, provider and frontend URL of the flow.';
comment on column private.oauth_pending_connections.completion_hash is
'sha256 of the one-time completion secret sent to the browser (the secret itself is not stored).';
comment on column private.oauth_pending_connections.external_id is
'Provider account to connect (channel, user or artist id), as identified with the granted token.';
comment on column private.oauth_pending_connections.display_name is 'Name of that account at the provider.';
comment on column private.oauth_pending_connections.tokens_encrypted is
'v1.<kid>.<AES-GCM ciphertext> of the token set (aad oauth_pending:<id>:tokens); null once consumed.';
comment on column private.oauth_pending_connections.created_at is 'When the callback parked it.';
comment on column private.oauth_pending_connections.expires_at is 'After this the completion is refused.';
comment on column private.oauth_pending_connections.consumed_at is
'When a completion consumed it (single use); its tokens are gone from then on.';
comment on column private.oauth_pending_connections.outcome is
'What the completion did: connected, or why it was refused (state_user_mismatch: presented by another user).';

create index oauth_pending_connections_expires_at_idx on private.oauth_pending_connections (expires_at);
comment on index private.oauth_pending_connections_expires_at_idx is 'Pruning of expired parked connections.';

alter table private.oauth_pending_connections enable row level security;
revoke all on private.oauth_pending_connections from public, anon, authenticated;

create function private.prune_oauth_flows(keep_states interval default interval '1 day') returns integer
language plpgsql volatile set search_path = ''
as $$
declare
    parked integer;
    states integer;
begin
    -- Expired parked connections go at once: an unconsumed one still holds tokens nobody may use.
    delete from private.oauth_pending_connections as p where p.expires_at <= now();
    get diagnostics parked = row_count;
    delete from private.oauth_states as s
    where
        s.expires_at < now() - keep_states
        and not exists (select 1 from private.oauth_pending_connections as p where p.state_id = s.id);
    get diagnostics states = row_count;
    return parked + states;
end
$$;
comment on function private.prune_oauth_flows(interval) is
'Deletes expired parked OAuth connections and OAuth states expired for longer than keep_states (1 day by '
'default). Returns how many rows. Run every 5 minutes by pg_cron.';
revoke execute on function private.prune_oauth_flows(interval) from public;

select cron.schedule('arti-prune-oauth-flows', '*/5 * * * *', 'select private.prune_oauth_flows()');
