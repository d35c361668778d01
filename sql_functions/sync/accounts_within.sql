-- Private helper accounts_within: how many accounts' daily syncs fit what is left of a budget.
create or replace function private.accounts_within(
    remaining numeric, per_account numeric, per_batch numeric, batch_size integer
)
returns bigint
language plpgsql immutable set search_path = ''
as $$
declare
    size integer := greatest(coalesce(accounts_within.batch_size, 1), 1);
    one_batch numeric := accounts_within.per_account * size + accounts_within.per_batch;
    batches bigint;
    left_over numeric;
    extra bigint := 0;
begin
    if accounts_within.per_account <= 0 and accounts_within.per_batch <= 0 then
        return null;
    end if;
    if accounts_within.remaining <= 0 then
        return 0;
    end if;
    batches := floor(accounts_within.remaining / one_batch);
    left_over := accounts_within.remaining - batches * one_batch;
    if left_over >= accounts_within.per_batch + accounts_within.per_account then
        extra := case
            when accounts_within.per_account > 0
                then least(size, floor((left_over - accounts_within.per_batch) / accounts_within.per_account))
            else size
        end;
    end if;
    return batches * size + extra;
end
$$;
comment on function private.accounts_within(numeric, numeric, numeric, integer) is
'The number of accounts whose daily syncs fit `remaining`, each spending per_account and each group of batch_size '
'per_batch; NULL when they spend nothing there (no limit).';
revoke all on function private.accounts_within(numeric, numeric, numeric, integer) from public, anon, authenticated;
