"""Where a shard's state lives in a shared database (`monitor.shard_state`): pure naming."""

from __future__ import annotations

import pytest

from monitor.shard import Shard
from monitor.shard_state import LEASE_NAME, StateScope, state_scope
from monitor.store.postgres import schema_name


def test_one_shard_keeps_the_names_from_before_sharding() -> None:
    assert state_scope(Shard(0, 1), shared_database=True) == StateScope(None, "dli-monitor")
    assert LEASE_NAME == "dli-monitor"


def test_without_a_shared_database_there_is_nothing_to_separate() -> None:
    assert state_scope(Shard(1, 2), shared_database=False) == StateScope()


def test_a_shard_of_several_gets_its_own_schema_and_lease() -> None:
    scope = state_scope(Shard(1, 2), shared_database=True)
    assert scope == StateScope("shard_1_of_2", "dli-monitor/shard-1")


def test_the_same_index_in_another_layout_is_another_schema_but_the_same_lease_name() -> None:
    two, three = (state_scope(Shard(1, n), shared_database=True) for n in (2, 3))
    assert two.schema != three.schema
    assert two.lease == three.lease  # its lease table is in the schema, so rows never meet


@pytest.mark.parametrize("total", [2, 7, 1000])
def test_every_shard_schema_is_a_safe_name(total: int) -> None:
    for index in range(total):
        schema = state_scope(Shard(index, total), shared_database=True).schema
        assert schema is not None and schema_name(schema) == schema
