-- One handle per account key (issue 14 item 6): a device list replayed
-- under a new handle must not give the devices it names, some perhaps
-- removed since, an identity of their own. Accounts whose key is not
-- theirs here are aliases from before this migration: store.go's Account
-- no longer returns them, so they cannot log in, be fetched or be sent to.
CREATE TABLE account_keys (
  account_key BLOB PRIMARY KEY,
  handle      TEXT NOT NULL
);

-- Existing accounts: each key goes to the handle whose list is newest
-- (only the key's owner can publish a newer one; a replayed list stays at
-- the version it was copied at), the first in byte order on a tie, as
-- the Go relay's store upgrade decides.
INSERT INTO account_keys (account_key, handle)
  SELECT a.account_key, a.handle FROM accounts a
  WHERE NOT EXISTS (
    SELECT 1 FROM accounts b
    WHERE b.account_key = a.account_key
      AND (b.version > a.version OR (b.version = a.version AND b.handle < a.handle)));

-- A new account claims its key in its own INSERT statement: a key already
-- claimed fails the trigger's insert, which aborts the registration whole
-- (D1 has no transactions; one statement with its triggers is atomic).
CREATE TRIGGER accounts_claim_key AFTER INSERT ON accounts
BEGIN
  INSERT INTO account_keys (account_key, handle) VALUES (NEW.account_key, NEW.handle);
END;
