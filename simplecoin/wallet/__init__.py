"""The light wallet: its key file and its client of a node's HTTP API, which checks what the node says."""
