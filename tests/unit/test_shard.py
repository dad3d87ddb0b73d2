"""Shard ownership: a stable hash, one owner per target, even spread, and readable errors."""

from __future__ import annotations

from collections import Counter

import pytest

from monitor.shard import Shard, resolve_shard, shard_from_pod_name, shard_of, target_key

PROJECT = "0123456789abcdef0123456789abcdef"
KEYS = [f"project-{n:04d}/queue-{n % 7}" for n in range(1_000)]


@pytest.mark.parametrize(
    ("key", "by_total"),
    [
        (PROJECT, {2: 0, 3: 1, 5: 2}),
        (f"{PROJECT}/etl", {2: 1, 3: 2, 5: 1}),
        (f"{PROJECT}/adhoc", {2: 1, 3: 2, 5: 4}),
        ("48cc2c48765f481480c7db940d6409d1/etl", {2: 1, 3: 2, 5: 1}),
        ("project-a", {2: 0, 3: 2, 5: 2}),
        ("project-b/queue-x", {2: 0, 3: 1, 5: 0}),
    ],
)
def test_assignments_are_pinned_so_a_change_of_hash_is_caught(
    key: str, by_total: dict[int, int]
) -> None:
    assert {total: shard_of(key, total) for total in by_total} == by_total


def test_the_hash_is_the_first_eight_bytes_of_sha256_read_big_endian() -> None:
    # sha256(b"<PROJECT>/etl") starts with b5e96f269fcf7b27.
    assert shard_of(f"{PROJECT}/etl", 2**64) == 0xB5E96F269FCF7B27
    assert shard_of(f"{PROJECT}/etl", 1_000_003) == 920_936


@pytest.mark.parametrize("total", [1, 2, 3, 4, 5])
def test_every_key_is_owned_by_exactly_one_shard(total: int) -> None:
    shards = [Shard(index, total) for index in range(total)]
    for key in KEYS:
        owners = [shard.index for shard in shards if shard.owns(key)]
        assert owners == [shard_of(key, total)]


def test_three_shards_share_three_thousand_keys_roughly_evenly() -> None:
    keys = [target_key(f"{n:032x}", f"queue_{n % 11}") for n in range(3_000)]
    counts = Counter(shard_of(key, 3) for key in keys)
    assert set(counts) == {0, 1, 2}
    for index, count in counts.items():
        assert 0.25 * len(keys) <= count <= 0.42 * len(keys), (index, count)


def test_a_single_shard_owns_everything() -> None:
    assert all(Shard(0, 1).owns(key) for key in KEYS)


@pytest.mark.parametrize(("index", "total"), [(-1, 3), (3, 3), (5, 3), (0, 0), (0, -2)])
def test_a_shard_outside_its_range_is_refused(index: int, total: int) -> None:
    with pytest.raises(ValueError, match="shard"):
        Shard(index, total)


def test_a_shard_reads_as_index_over_total() -> None:
    assert str(Shard(1, 3)) == "1/3"


def test_shard_of_refuses_zero_shards() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        shard_of("x", 0)


@pytest.mark.parametrize(
    ("project", "queue", "key"),
    [(PROJECT, None, PROJECT), (PROJECT, "etl", f"{PROJECT}/etl")],
)
def test_target_key_names_a_project_or_a_project_queue(
    project: str, queue: str | None, key: str
) -> None:
    assert target_key(project, queue) == key


@pytest.mark.parametrize(
    ("project", "queue"), [("", None), ("a/b", None), (PROJECT, ""), ("p", "q/r")]
)
def test_target_key_refuses_empty_or_slashed_parts(project: str, queue: str | None) -> None:
    with pytest.raises(ValueError, match="free of '/'"):
        target_key(project, queue)


@pytest.mark.parametrize(
    ("name", "ordinal"),
    [("dli-monitor-2", 2), ("dli-batch-monitor-0", 0), ("a-10", 10), ("x-1-3", 3)],
)
def test_the_ordinal_is_the_trailing_number_of_a_statefulset_pod_name(
    name: str, ordinal: int
) -> None:
    assert shard_from_pod_name(name) == ordinal


@pytest.mark.parametrize(
    "name", ["x", "", "dli-monitor", "-3", "dli-monitor-", "dli-monitor-7b9f-x2x4q", "monitor-٣"]
)
def test_a_pod_name_without_an_ordinal_is_a_clear_error(name: str) -> None:
    with pytest.raises(ValueError, match="StatefulSet ordinal"):
        shard_from_pod_name(name)


@pytest.mark.parametrize(
    ("shard", "total", "pod_name", "expected"),
    [
        (None, None, None, Shard(0, 1)),
        (None, None, "dli-monitor-2", Shard(0, 1)),
        (1, 3, None, Shard(1, 3)),
        (1, 3, "dli-monitor-2", Shard(1, 3)),
        (None, 3, "dli-monitor-2", Shard(2, 3)),
        (None, 1, "dli-monitor-0", Shard(0, 1)),
    ],
)
def test_resolve_shard_prefers_flags_then_the_pod_name_then_owns_everything(
    shard: int | None, total: int | None, pod_name: str | None, expected: Shard
) -> None:
    assert resolve_shard(shard, total, pod_name) == expected


@pytest.mark.parametrize(
    ("shard", "total", "pod_name", "message"),
    [
        (1, None, None, "--shard 1 needs --total-shards"),
        (3, 3, None, "--shard 3 is out of range for --total-shards 3"),
        (-1, 3, None, "out of range"),
        (None, 0, "dli-monitor-0", "--total-shards must be at least 1"),
        (None, 3, None, "POD_NAME, which is not set"),
        (None, 3, "", "POD_NAME, which is not set"),
        (None, 3, "dli-monitor-3", "has ordinal 3 but --total-shards is 3"),
        (None, 3, "dli-monitor-7b9f-x2x4q", "StatefulSet ordinal"),
    ],
)
def test_resolve_shard_explains_every_impossible_combination(
    shard: int | None, total: int | None, pod_name: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_shard(shard, total, pod_name)
