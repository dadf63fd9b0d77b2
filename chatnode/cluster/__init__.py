"""Cluster mode: what crosses between nodes that share one store, over a Redis bus.

Only a node with `[bus] url` imports this package; a single node never does.
"""
