"""The ``ballotledger`` command line: one entry point for operators, observers and voters."""
