"""Every operation the node runs through its store exists on PostgreSQL with the same shape:
pg_ops has a twin of each of sqlite.py's operations, with the same parameters (names, kinds,
defaults, annotations) and the same return annotation, and PostgresStore maps each one."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[cluster]'")

from chatnode.store import pg_ops, pg_search
from chatnode.store import sqlite as sql
from chatnode.store.pg_store import twin_of

PACKAGE = Path(sql.__file__).parents[1]


def _shape(fn: object) -> tuple[object, ...]:
    signature = inspect.signature(fn)  # type: ignore[arg-type]
    _conn, *params = signature.parameters.values()
    return (tuple((p.name, p.kind, p.default, p.annotation) for p in params),
            signature.return_annotation)


def names_the_node_uses() -> set[str]:
    """Every `sql.NAME` and `from ...sqlite import NAME` in chatnode, outside the store."""
    used: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "store":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "sql"):
                used.add(node.attr)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").endswith("sqlite"):
                used.update(alias.name for alias in node.names)
    return used


def test_every_sqlite_operation_has_a_twin_with_the_same_signature() -> None:
    operations = pg_ops.sqlite_operations()
    assert len(operations) > 30
    for name, fn in operations.items():
        twin = getattr(pg_ops, name)
        assert pg_ops.TWINS[fn] is twin
        assert _shape(twin) == _shape(fn), f"pg_ops.{name} differs from sqlite.{name}"


def test_every_search_operation_has_a_twin_with_the_same_signature() -> None:
    """search.py's store functions (the web layer reads `search_index.search`) run as
    pg_search.py's on PostgreSQL."""
    operations = pg_ops.search_operations()
    assert {"index_message", "reindex_message", "unindex_message", "rebuild", "search",
            "index_bytes"} <= set(operations)
    for name, fn in operations.items():
        twin = getattr(pg_search, name)
        assert twin_of(fn) is twin
        assert _shape(twin) == _shape(fn), f"pg_search.{name} differs from search.{name}"


def test_every_operation_the_node_names_is_mapped_by_the_postgresql_store() -> None:
    used = names_the_node_uses()
    operations = [name for name in used if name in pg_ops.sqlite_operations()]
    assert {"append_message", "advance_markers", "history", "touch_health"} <= set(operations)
    for name in operations:
        assert twin_of(getattr(sql, name)) is getattr(pg_ops, name)
    # whatever else the node takes from sqlite.py is not an operation on a connection
    for name in used - set(operations):
        fn = getattr(sql, name)
        params = list(inspect.signature(fn).parameters) if inspect.isfunction(fn) else []
        assert params[:1] != ["conn"] or name in pg_ops.NOT_OPERATIONS, name


def test_an_operation_of_sqlite_without_a_twin_is_refused_loudly() -> None:
    def orphan(conn: object) -> None: ...

    orphan.__module__ = sql.__name__
    with pytest.raises(LookupError, match="no PostgreSQL twin"):
        twin_of(orphan)


def test_no_postgresql_operation_reads_rowcount_before_its_answer_is_back() -> None:
    """The writer sends a batch's statements in a pipeline, where cursor.rowcount says -1 until
    the answer is back: an operation that read it there would take a revoked device for an
    unknown one. Counts are read through postgres.rowcount, which waits for the answer."""
    from chatnode.store import postgres

    helper, first = inspect.getsourcelines(postgres.rowcount)
    allowed = {("postgres.py", first + i) for i in range(len(helper))}
    readers = [f"{path.name}:{number}"
               for path in sorted((PACKAGE / "store").glob("p*.py"))
               for number, line in enumerate(path.read_text().splitlines(), 1)
               if ".rowcount" in line and (path.name, number) not in allowed]
    assert readers == [], "cursor.rowcount read outside postgres.rowcount"
