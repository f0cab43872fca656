"""Tendermint BFT consensus: wire messages and the sans-IO state machine."""
