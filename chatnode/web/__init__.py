"""HTTP and WebSocket: the ASGI app."""
