"""PostgreSQL fixtures (a pytest plugin, registered in `tests/conftest.py`).

- `pg_server_dsn` (session): one throw-away server for the whole run (`tests/pg_server.py`),
  started on first use; its value is the superuser DSN of the `postgres` database.
- `pg_dsn` (function): a fresh, empty database `test_<n>` on that server for each test, dropped
  afterwards, so tests never see each other's rows.

Without the PostgreSQL binaries the tests that use these skip, or fail when CI sets
REQUIRE_TOOLS=1 (through `tests.conftest.require_tool`).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import require_tool
from tests.pg_server import find_bindir, running_server, with_database

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """Start one server for the session; yield its superuser DSN (database `postgres`)."""
    bindir = find_bindir() or Path(require_tool("initdb")).parent
    with running_server(bindir) as server:
        yield server.dsn()


@pytest.fixture
async def pg_dsn(pg_server_dsn: str) -> AsyncIterator[str]:
    """A DSN to a new empty database for this test only."""
    name = f"test_{next(_database_numbers)}"
    admin = await asyncpg.connect(pg_server_dsn, timeout=10)
    try:
        # FILE_COPY (PostgreSQL 15+) is ten times faster than the default here, with fsync off.
        fast = " STRATEGY = FILE_COPY" if admin.get_server_version().major >= 15 else ""
        await admin.execute(f"CREATE DATABASE {name}{fast}")
        yield with_database(pg_server_dsn, name)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
