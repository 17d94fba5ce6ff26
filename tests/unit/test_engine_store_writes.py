"""The engine's durable writes: one write batch per partition where the store offers it."""

from __future__ import annotations

from pathlib import Path

from rocksdict import Options, Rdict

from agents.logic.engine import Engine
from agents.logic.partition import write_all_to
from streams.worker.store import RdictPartition
from tests.unit.conftest import engine_config


def test_write_all_puts_and_deletes_in_one_rocksdb_batch(tmp_path: Path) -> None:
    db = Rdict(str(tmp_path / "db"), Options(raw_mode=True))
    try:
        store = RdictPartition(db)
        store[b"gone"] = b"old"
        write_all_to(store, [(b"a", b"1"), (b"gone", None), (b"b", b"2"), (b"a", b"3")])
        assert dict(store.items()) == {b"a": b"3", b"b": b"2"}
    finally:
        db.close()


def test_write_all_on_a_plain_mapping() -> None:
    store = {b"gone": b"old"}
    write_all_to(store, [(b"a", b"1"), (b"gone", None), (b"missing", None)])
    assert store == {b"a": b"1"}


def test_mark_durable_names_only_the_partitions_it_wrote() -> None:
    engine = Engine(engine_config())
    stores: dict[int, dict[bytes, bytes]] = {0: {}, 1: {}}
    for number, store in stores.items():
        engine.assign(number, store)
    engine.revoke(1)  # revoked while the group was in flight
    assert engine.mark_durable([(0, b"u0", b"state0"), (1, b"u1", b"state1")]) == {0}
    assert stores == {0: {b"u0": b"state0"}, 1: {}}
