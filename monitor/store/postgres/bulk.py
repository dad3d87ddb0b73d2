"""PostgreSQL: filling an empty store in one transaction, and counting its rows.

For `monitor.store.migrate` (`dli-monitor state migrate`): `import_rows` takes every table's
rows, already in PostgreSQL's types, locks the store's tables, refuses a database that holds any
state (`TargetNotEmpty`), copies the rows with `COPY` and moves the identity sequences past the
copied ids, all in ONE transaction. Reading the source is the caller's business.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.store.postgres.connection import DB_ERRORS, PostgresBase
from monitor.store.postgres.schema import STORE_TABLES
from monitor.store.types import StoreError

IDENTITY_COLUMNS = {"events": "seq", "silences": "id", "digests": "id", "attempts": "id"}
"""The identity column of each table that has one (ids the next insert must not reuse)."""


class TargetNotEmpty(StoreError):
    """The database already holds state, so nothing was imported into it."""


@dataclass(frozen=True, slots=True)
class TableRows:
    """The rows of one table to import: column names, and one tuple per row in that order."""

    columns: Sequence[str]
    rows: Iterable[Sequence[object]]


class PostgresBulk(PostgresBase):
    """Bulk import and row counts over the shared pool."""

    async def import_rows(
        self, tables: Mapping[str, TableRows], *, id_floors: Mapping[str, int] | None = None
    ) -> None:
        """Copy `tables` into this EMPTY store in one transaction; `TargetNotEmpty` otherwise.

        `id_floors` (per table in `IDENTITY_COLUMNS`): the highest id ever handed out at the
        source, so that new rows never reuse one, even of a row deleted there.
        """
        unknown = set(tables) - set(STORE_TABLES)
        if unknown:
            raise ValueError(f"not tables of the store: {sorted(unknown)}")
        async with self._transaction() as conn:
            await conn.execute(f"LOCK TABLE {', '.join(STORE_TABLES)} IN EXCLUSIVE MODE")
            held = await _counts(conn)
            if any(held.values()):
                found = ", ".join(f"{table}: {n}" for table, n in held.items() if n)
                raise TargetNotEmpty(
                    f"PostgreSQL {self._where} already holds state ({found} rows); migrate only"
                    " into an empty database (nothing was copied)"
                )
            for table in STORE_TABLES:  # parents before children
                if table in tables:
                    source = tables[table]
                    await conn.copy_records_to_table(
                        table, records=source.rows, columns=list(source.columns)
                    )
            for table, column in IDENTITY_COLUMNS.items():
                floor = (id_floors or {}).get(table, 0)
                await conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), m)"
                    f" FROM (SELECT greatest(max({column}), $1) AS m FROM {table}) AS top"
                    " WHERE m > 0",
                    floor,
                )

    async def row_counts(self) -> dict[str, int]:
        """Rows per table of the store, in `STORE_TABLES` order."""
        try:
            async with self._pool.acquire() as conn:
                return await _counts(conn)
        except DB_ERRORS as exc:
            raise StoreError(f"PostgreSQL {self._where}: counting rows failed: {exc}") from exc


async def _counts(conn: Any) -> dict[str, int]:
    """Rows per store table, counted on `conn` (inside its transaction, if any)."""
    return {
        table: int(await conn.fetchval(f"SELECT count(*) FROM {table}")) for table in STORE_TABLES
    }
