"""A full node's I/O shell around the core: the store, the node, the server process, peers, mining workers."""
