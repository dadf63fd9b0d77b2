"""Why a store cannot be used, said in one line for the admin."""

from __future__ import annotations

import importlib
from types import ModuleType


class StoreError(Exception):
    """The store named by the config cannot be used: unreachable, refused, failing, or with a
    schema newer than this chatnode. The message is one line and never holds a password, so
    the CLI prints it as it is."""


def cluster_module(name: str) -> ModuleType:
    """chatnode.store.NAME, one of the modules of a PostgreSQL store, imported only when a
    config names one (a single node never loads psycopg); StoreError says what to install
    when the cluster extra is missing."""
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError as exc:
        raise StoreError("a PostgreSQL store needs chatnode's cluster extra:"
                         f" pip install 'chatnode[cluster]' ({exc})") from None
