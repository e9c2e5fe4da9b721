"""The node's HTTP face: the JSON API and the block explorer, one Flask app."""
