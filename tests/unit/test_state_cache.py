"""The partition's cache of durable states: fewer store reads, never a different answer."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from agents.logic.aggregates import Aggregates
from agents.logic.days import DAY_MS
from agents.logic.engine import Engine
from agents.logic.meta import Meta
from agents.logic.partition import Partition
from agents.logic.timers import DeadlineIndex
from schemas.records import Event
from streams.settings import Settings
from streams.worker.engine_setup import state_cache_per_partition
from tests.unit.conftest import T0, engine_config, make_event


class CountingStore(dict[bytes, bytes]):
    """A dict store that counts the reads reaching it."""

    reads = 0

    def get(self, key: bytes, default: Any = None) -> Any:
        self.reads += 1
        return super().get(key, default)


def replay(
    cache: int, seed: int, crash_at: int | None = None
) -> tuple[list[Any], dict[int, CountingStore], Engine]:
    """A random replay of 40 users over two partitions, in batches, with ticks, changes taken
    and made durable a step late (as the runtime does); every signal and changelog record."""
    rnd = random.Random(seed)
    engine = Engine(dataclasses.replace(engine_config(), state_cache=cache))
    stores = {0: CountingStore(), 1: CountingStore()}
    for number, store in stores.items():
        engine.assign(number, store)
    seen: list[Any] = []
    taken: list[tuple[int, bytes, bytes | None]] = []
    now = T0
    for step in range(120):
        now += rnd.randint(0, DAY_MS // 2)
        number = rnd.randint(0, 1)
        batch: list[Event] = [
            make_event(f"u{number}-{rnd.randint(0, 19)}", now - rnd.randint(0, DAY_MS // 8))
            for _ in range(rnd.randint(1, 12))
        ]
        seen.append(engine.process(number, batch, 0).signals)
        seen.append(engine.tick(0).signals)
        engine.mark_durable(taken)
        taken = engine.take_changes()
        seen.append(taken)
        if step == crash_at:  # a new owner over the same stores: the cache starts again
            for number, store in stores.items():
                engine.revoke(number)
                engine.assign(number, store, {k: v for n, k, v in taken if n == number})
    return seen, stores, engine


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("cache", [1, 3, 50])
def test_the_same_signals_and_changelog_with_and_without_the_cache(seed: int, cache: int) -> None:
    plain, plain_stores, _ = replay(0, seed, crash_at=seed * 17)
    cached, cached_stores, _ = replay(cache, seed, crash_at=seed * 17)
    assert cached == plain
    assert {n: dict(s) for n, s in cached_stores.items()} == {
        n: dict(s) for n, s in plain_stores.items()
    }


@pytest.mark.parametrize("seed", range(4))
def test_the_cache_holds_what_the_store_holds_and_saves_reads(seed: int) -> None:
    _, plain_stores, _ = replay(0, seed)
    _, stores, engine = replay(50, seed)
    for number, part in engine.partitions.items():
        assert part.cache, "a cache as large as the users is used"
        for key, value in part.cache.items():
            assert stores[number].get(key) == value
    reads, plain_reads = (sum(s.reads for s in x.values()) for x in (stores, plain_stores))
    # the replay reads each of its 40 users from the store once (a miss fills the cache); the
    # loop above read each cached key once more
    assert reads - sum(len(p.cache) for p in engine.partitions.values()) <= 40
    assert plain_reads > 3 * reads


def test_a_full_cache_drops_its_older_half() -> None:
    part = Partition(0, {}, Aggregates(), DeadlineIndex(), Meta(), cache_limit=4)
    for index in range(4):
        part.remember(b"k%d" % index, b"v%d" % index)
    part.remember(b"k2", b"newer")  # present: updated in place, nothing dropped
    assert part.cache == {b"k0": b"v0", b"k1": b"v1", b"k2": b"newer", b"k3": b"v3"}
    part.remember(b"k4", None)  # absent keys are kept too
    assert part.cache == {b"k2": b"newer", b"k3": b"v3", b"k4": None}


def test_the_setting_is_split_over_the_partitions_and_off_in_memory() -> None:
    settings = Settings.from_env({"ENGAGEMENT_STORE": "rocksdict://"})
    assert settings.state_cache == 200_000
    assert state_cache_per_partition(settings) == 25_000
    assert state_cache_per_partition(settings.replace(partitions=3, state_cache=10)) == 3
    assert state_cache_per_partition(settings.replace(partitions=64, state_cache=10)) == 1
    assert state_cache_per_partition(settings.replace(state_cache=0)) == 0
    assert state_cache_per_partition(settings.replace(store="memory://")) == 0
