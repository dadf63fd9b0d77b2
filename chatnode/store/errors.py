"""Why a store cannot be used, said in one line for the admin."""

from __future__ import annotations


class StoreError(Exception):
    """The store named by the config cannot be used: unreachable, refused, failing, or with a
    schema newer than this chatnode. The message is one line and never holds a password, so
    the CLI prints it as it is."""
