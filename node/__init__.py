"""A validator process: consensus driver, peer transport, mempool, execution and RPC."""
