"""The observer's verifier: replays a chain from genesis with the ledger's own rules."""
