"""The ingest step alone (bench.ingest_only): route and encode the bench's input, no broker."""

from __future__ import annotations

import itertools

import orjson

from streams.testbed.bench.ingest_only import _measure, _messages, _parser, run


def test_the_input_comes_in_runs_per_partition_with_offsets_counted_per_partition() -> None:
    messages = _messages(2_000, 200, partitions=4)
    assert len(messages) == 2_000
    runs = [
        (part, list(group)) for part, group in itertools.groupby(messages, lambda m: m.partition())
    ]
    assert [part for part, _ in runs] == sorted({m.partition() for m in messages})  # one run each
    for _, run_of in runs:
        assert [m.offset() for m in run_of] == list(range(len(run_of)))
    first = messages[0]
    event = orjson.loads(first.value())
    assert first.key() == event["user_id"].encode()
    assert first.timestamp()[1] == event["timestamp"] and first.topic() == "user.events"


def test_the_ingest_only_bench_forwards_every_event_and_its_digest_repeats() -> None:
    from agents import logic

    result = run(3_000, 300, 4, 500)
    assert result["events"] == 3_000 and result["records"] > 0 and result["dead_letters"] == 0
    assert result["compiled"] == logic.compiled() and result["cpu_s"] > 0
    assert run(3_000, 300, 4, 500)["digest"] == result["digest"] != ""
    assert run(3_000, 300, 4, 500, hashing=False)["digest"] == ""


def test_the_ingest_only_baseline_routes_nothing() -> None:
    base = run(3_000, 300, 4, 500, calls=False)
    assert base["events"] == 3_000 and base["records"] == 0 and base["cpu_s"] == 0.0


def test_the_ingest_only_bench_counts_the_steps_instructions_under_valgrind() -> None:
    args = _parser().parse_args(["--events", "1000", "--users", "100", "--instructions"])
    result = _measure(args)
    assert result["events"] == 1_000 and result["records"] > 0
    assert result["instructions"] > 1_000 * 1_000  # thousands of instructions per event
