"""The store backends every contract test in this folder runs against.

`store` is a fresh, empty store of each backend in `BACKENDS`; `reopen` opens a second store
over the same state (a restart). The tests here use only the `Store` contract, so that adding
a backend is one entry in `BACKENDS` and one branch in `store_location`. SQLite-only behaviour
(the file, its modes, WAL, migrations) is tested in `test_store_sqlite*.py` without them.
"postgres" runs on a fresh database of the session's throw-away server (`pg_dsn`, from
`tests/pg_fixtures.py`); without the PostgreSQL binaries those cases skip (fail under
REQUIRE_TOOLS=1). "postgres_schema" is the same backend with its tables in a shard's own schema
(`SHARD_SCHEMA`, as `monitor.shard_state` names it), not in `public`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.store import Store, open_store
from tests.store.support import Reopen

BACKENDS = ("sqlite", "postgres", "postgres_schema")
"""Every backend behind the store contract (and PostgreSQL once more in a shard's schema)."""
SHARD_SCHEMA = "shard_1_of_2"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend (and placement) the test runs against."""
    name: str = request.param
    return name


@pytest.fixture
def store_location(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh, empty store of one backend lives: what `open_store` takes."""
    if backend == "sqlite":
        return str(tmp_path / "state.db")
    if backend in ("postgres", "postgres_schema"):
        dsn: str = request.getfixturevalue("pg_dsn")
        return dsn
    raise AssertionError(f"no location for store backend {backend!r}")


@pytest.fixture
def store_schema(backend: str) -> str | None:
    """The PostgreSQL schema the store's tables live in (None: the default)."""
    return SHARD_SCHEMA if backend == "postgres_schema" else None


@pytest.fixture
async def store(store_location: str, store_schema: str | None) -> AsyncIterator[Store]:
    """A fresh store of each backend, closed after the test."""
    opened = await open_store(store_location, schema=store_schema)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def reopen(store_location: str, store_schema: str | None) -> AsyncIterator[Reopen]:
    """Opens another store over the same state (as a restarted process would); each one
    opened is closed after the test."""
    opened: list[Store] = []

    async def again() -> Store:
        store = await open_store(store_location, schema=store_schema)
        opened.append(store)
        return store

    try:
        yield again
    finally:
        for store in opened:
            await store.close()
