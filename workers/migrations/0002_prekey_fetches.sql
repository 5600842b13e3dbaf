-- The fetch budget of each device (issue 14 item 9): a token bucket that
-- every fetch of the device's bundle spends, whatever socket, account or
-- Worker instance it comes from. tokens is what was left at "at" (unix
-- ms); relay.Config.PrekeyFetches is the burst. One upsert spends it
-- (store.go TakeBundle), so concurrent fetches cannot overspend.
CREATE TABLE prekey_fetches (
  addr   TEXT PRIMARY KEY,
  tokens REAL NOT NULL,
  at     INTEGER NOT NULL
);
