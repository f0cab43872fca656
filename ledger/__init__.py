"""ballot-ledger's pure core: encodings, hashing, the Merkle log, chain rules and the store."""
