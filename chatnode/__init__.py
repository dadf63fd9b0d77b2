"""chatnode: a self-hosted chat server in one process."""
