"""The gateway: the HTTP front door for voting front ends (its own process).

It checks each ballot with the chain's own rules, makes it durable in a local outbox
(group-committed LevelDB writes), answers 202, and forwards it to the validators.
"""
