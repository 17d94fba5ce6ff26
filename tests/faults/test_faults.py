"""Fault scenarios on Apache Kafka: crashes, takeovers, a broker restart, a clean shutdown, an
unwritable dead-letter topic, abusive input, unreadable by_user records and changelog states,
an unwritable changelog, and the node leading the partitions of a three-node cluster killed.
Each one ends with the same checks
(``checks.finish``): input committed to its end, every gauge equal to the oracle, every input
message valid or dead-lettered, every expected signal delivered, duplicates sharing their id.
"""

from __future__ import annotations

import time

import orjson
import pytest

from agents.logic.meta import META_KEY
from agents.logic.state import VERSION as STATE_VERSION
from streams.testbed.brokers import KafkaCluster
from streams.testbed.processes import WorkerProcess
from streams.topics import Topics
from tests.faults import System, build_ledger, rss_bytes, wait_until
from tests.faults.abuse import abusive_input, oversized, widest_ids
from tests.faults.checks import finish, progress
from tests.faults.conftest import PARTITIONS as PARTITIONS_OF_FAULTS
from tests.faults.conftest import workload
from tests.faults.ledger import read_topic
from tests.oracle import DAY_MS

GRACE_S = 30.0  # WorkerProcess.stop's SIGTERM grace period before SIGKILL
NODE_DOWN_S = 20.0  # the killed cluster node stays down at least this long


def test_kill_9_mid_stream_then_restart(make_system) -> None:
    system: System = make_system("kill9")
    load = workload(101, system)
    worker = system.start("w0")
    system.publish_in_background(load.first + load.second)
    progress(system, load.size // 4)
    worker.kill()
    where = system.ingest_position()
    restarted = time.monotonic()
    system.start("w0")
    notes = f"SIGKILL with {where[0]:,} of {where[1]:,} input committed"
    finish(system, load, "kill -9 worker, restart", restarted, notes)


def test_two_workers_one_killed_other_takes_over(make_system) -> None:
    system: System = make_system("takeover")
    load = workload(202, system)
    w0, w1 = system.start("w0"), system.start("w1")
    wait_until(
        lambda: [w.metrics().get("engagement_partitions_owned") for w in (w0, w1)] == [2.0, 2.0],
        60,
        "two partitions on each worker",
    )
    system.publish_in_background(load.first + load.second)
    progress(system, load.size // 4)
    w1.kill()
    killed = time.monotonic()
    wait_until(lambda: w0.metrics().get("engagement_partitions_owned") == 4.0, 90, "takeover")
    took_over = time.monotonic() - killed
    finish(system, load, "2 workers, 1 killed (takeover)", killed, f"takeover {took_over:.1f} s")
    system.start("w1")
    wait_until(
        lambda: (
            w1.metrics().get("engagement_partitions_owned", 0) > 0
            and w0.metrics().get("engagement_partitions_owned", 4.0) < 4.0
        ),
        90,
        "scaled back to two workers",
    )
    rebalanced = time.monotonic()
    finish(system, load, "... scaled back to 2 workers", rebalanced, "after the takeover")


def test_broker_restart_while_the_worker_runs(make_system, fault_broker) -> None:
    system: System = make_system("broker")
    load = workload(303, system)
    system.start("w0")
    system.publish_in_background(load.first + load.second)
    progress(system, load.size // 4)
    down = time.monotonic()
    fault_broker.restart()  # SIGTERM, same port and log dir, start again
    outage = time.monotonic() - down
    back = time.monotonic()
    finish(system, load, "broker stopped + restarted", back, f"broker down {outage:.1f} s")


def test_sigterm_is_a_clean_shutdown(make_system) -> None:
    system: System = make_system("sigterm")
    load = workload(404, system)
    worker = system.start("w0")
    system.publish(load.first)
    wait_until(
        lambda: worker.metrics().get("engagement_events_consumed_total") == len(load.first),
        180,
        "the first half consumed",
    )
    started = time.monotonic()
    code = worker.stop(timeout=GRACE_S)
    shutdown = time.monotonic() - started
    assert code == 0, f"exit code {code} after SIGTERM:\n{worker.log_tail()}"
    assert shutdown < GRACE_S
    settings = system.settings
    assert system.ingest_caught_up(), "input offsets not committed at shutdown"
    records, events = system.uncommitted_events(settings.app_id, Topics.of(settings).by_user)
    assert events == 0, f"{events} events in {records} by_user records left uncommitted"
    system.publish(load.second)
    restarted = time.monotonic()
    worker = system.start("w0")
    row = finish(
        system,
        load,
        "SIGTERM, restart",
        restarted,
        f"shutdown {shutdown:.1f} s, exit 0, {records} watermark-only by_user records uncommitted",
    )
    consumed = worker.metrics()["engagement_events_consumed_total"]
    assert consumed == len(load.second), f"re-read {consumed - len(load.second)} messages"
    row.notes += ", nothing re-read"


def test_dead_letter_topic_unwritable_for_a_while(make_system) -> None:
    system: System = make_system("dlq")
    load = workload(505, system)
    bad = abusive_input(int(time.time() * 1000), scale=1)[0]
    worker = system.start("w0")
    topic = Topics.of(system.settings).dead_letter
    system.set_topic_config(topic, "max.message.bytes", "1")
    system.publish(load.first + bad)
    wait_until(lambda: retries(worker) > 0, 60, "dead-letter deliveries retried")
    time.sleep(5)
    committed, end = system.ingest_position()
    assert committed < end, "ingest committed past dead letters it could not write"
    held = retries(worker)
    system.set_topic_config(topic, "max.message.bytes", "1048588")
    fixed = time.monotonic()
    system.publish(load.second)
    row = finish(
        system, load, "dead-letter topic unwritable", fixed, f"{held:.0f} retries while held"
    )
    reduced = len(build_ledger(system.settings).reduced)  # written as digests (issue 15)
    row.notes += f", {reduced} of {row.accounts.dead_lettered} dead letters written as digests"


def retries(worker: WorkerProcess) -> float:
    """Retries of every role: the Deliverer's producer round is shared, so a failed dead letter
    is counted under the role of whichever stage flushes that round (by_user or changelog)."""
    return sum(
        value
        for name, value in worker.metrics().items()
        if name.startswith("engagement_delivery_retries_total")
    )


def test_input_abuse_at_high_rate(make_system) -> None:
    system: System = make_system("abuse")
    now = int(time.time() * 1000)
    bad, late = abusive_input(now, scale=20)
    load = workload(606, system, extra=late.oracle_events)
    worker = system.start("w0")
    pid = worker_pid(worker)
    # Each rate is timed from the start of its publish: timed from its end, it was the rest the
    # ingest had left when the publisher finished, which was anything up to all of it (one
    # run measured the first half at 293,490 msg/s, ten times the usual, and failed below).
    started = time.monotonic()
    system.publish(load.first)
    wait_until(system.ingest_caught_up, 240, "the first half")
    clean_rate = len(load.first) / (time.monotonic() - started)
    rss_before = rss_bytes(pid)
    system.publish(bad + late.messages)
    wait_until(system.ingest_caught_up, 240, "the abusive input")
    rss_after = rss_bytes(pid)
    started = time.monotonic()
    system.publish(load.second)
    published = time.monotonic()
    wait_until(system.ingest_caught_up, 240, "the second half")
    after_rate = len(load.second) / (time.monotonic() - started)
    growth = (rss_after - rss_before) / 2**20
    notes = (
        f"{len(bad) + len(late.messages):,} abusive msgs; RSS {rss_before / 2**20:.0f}"
        f"->{rss_after / 2**20:.0f} MiB; {clean_rate:,.0f}->{after_rate:,.0f} msg/s"
    )
    finish(system, load, "input abuse at high rate", published, notes)
    assert growth < 200, f"RSS grew by {growth:.0f} MiB"
    if load.clock == "event":  # paced (wall-clock) input has no throughput to compare
        assert after_rate > clean_rate / 3, f"throughput did not recover: {notes}"


@pytest.mark.configs("event-memory")  # record sizes, not clocks: one configuration is enough
def test_records_kafka_cannot_take_verbatim(make_system) -> None:
    """Issue 15: a 1,039,000-byte input (the input topic takes it; the producer does not) and
    500 valid events with the longest 4-byte-character ids on one partition (over 1 MB of
    by_user rows) among normal traffic: the worker keeps running, the big input is
    dead-lettered reduced, the wide events are folded in records under the limit."""
    system: System = make_system("oversized")
    big = oversized(1_039_000)
    wide = widest_ids(int(time.time() * 1000), 500, PARTITIONS_OF_FAULTS)
    load = workload(707, system, extra=wide.oracle_events)
    worker = system.start("w0")
    pid = worker_pid(worker)
    system.publish(load.first)
    progress(system, len(load.first) // 2)
    system.publish([big, *wide.messages])
    published = time.monotonic()
    system.publish(load.second)
    row = finish(system, load, "1 MB input, 500 widest ids", published, "")
    assert worker.running and worker_pid(worker) == pid, f"worker exited:\n{worker.log_tail()}"
    ledger = build_ledger(system.settings)
    where = [o for o, ident in system.inputs.items() if ident is None]
    assert len(where) == 1, "the oversized input is the only invalid one"
    headers = ledger.reduced.get(where[0])
    assert headers is not None, "the oversized input was not dead-lettered reduced"
    assert headers["engagement.error.reason"] == b"too_large"
    assert int(headers["engagement.error.original_bytes"]) == len(big.value or b"") + len(
        big.key or b""
    )
    limit = system.settings.record_max_bytes
    assert ledger.by_user_largest <= limit, f"a by_user record of {ledger.by_user_largest} bytes"
    row.notes = (
        f"worker never exited; dead letter reduced to "
        f"{headers['engagement.error.reduced'].decode()}; largest by_user record "
        f"{ledger.by_user_largest / 1024:,.0f} KiB (limit {limit / 1024:,.0f} KiB)"
    )


def worker_pid(worker: WorkerProcess) -> int:
    proc = worker._proc  # WorkerProcess has no public pid (yet)
    assert proc is not None
    return int(proc.pid)


def test_unreadable_by_user_records_are_quarantined(make_system) -> None:
    system: System = make_system("quarantine")
    load = workload(707, system)
    worker = system.start("w0")
    system.publish(load.first)
    progress(system, len(load.first) // 2)
    by_user = Topics.of(system.settings).by_user
    ts = load.end_ms - 2 * DAY_MS  # ghosts: users that would show in every gauge if folded
    half_bad = [["ghost-2", ts, "g2", "page_view", None], ["ghost-3", "late", "g3", "click", None]]
    bad = [
        (0, b"k", b"\xff\xfe not JSON"),
        (1, b"ghost-1", orjson.dumps({"v": 3, "rows": [["ghost-1", ts, "g1", "click", None]]})),
        (2, b"k", None),  # a tombstone
        (3, b"ghost-2", orjson.dumps({"v": 2, "wm": 0, "src": "", "rows": half_bad})),
    ]
    offsets = system.produce(by_user, bad)
    written = time.monotonic()
    system.publish(load.second)
    row = finish(system, load, "unreadable by_user records", written, "")
    metrics = worker.metrics()
    counted = {
        reason: metrics[f'engagement_records_quarantined_total{{reason="{reason}"}}']
        for reason in ("not_json", "unknown_version", "tombstone", "invalid_batch")
    }
    assert counted == dict.fromkeys(counted, 1.0), counted
    committed = system.committed(system.settings.app_id, by_user)
    assert all(committed[p] > offset for (p, _, _), offset in zip(bad, offsets, strict=True))
    assert row.quarantined == len(bad)
    row.notes = "garbage, batch v3, tombstone, half-bad batch: each quarantined, none folded"


def test_an_unreadable_state_stops_the_worker_until_repaired(make_system) -> None:
    system: System = make_system("badstate")
    load = workload(808, system)
    worker = system.start("w0")
    system.publish(load.first)
    wait_until(system.ingest_caught_up, 240, "the first half")
    assert worker.stop(timeout=GRACE_S) == 0
    settings, topics = system.settings, Topics.of(system.settings)
    part = 1
    latest = {
        msg.key(): msg.value()
        for msg in read_topic(settings, topics.changelog)
        if msg.partition() == part and msg.key() != META_KEY
    }
    key, good = next((k, v) for k, v in latest.items() if v is not None)
    newer = STATE_VERSION + 1  # a state written by a newer worker
    [bad_at] = system.produce(topics.changelog, [(part, key, bytes([newer]) + good[1:])])
    before = system.committed(settings.app_id, topics.by_user)
    system.publish(load.second)
    worker.start(wait_ready=None)
    code = worker.wait_exit(180)
    log = worker.log_tail(300)
    assert code == 70, log
    assert f"{topics.changelog} partition {part} at offset {bad_at}" in log, log
    assert f"state version {newer} is newer" in log
    assert system.committed(settings.app_id, topics.by_user)[part] == before[part]
    system.produce(topics.changelog, [(part, key, good)])  # the repair: a valid, newer record
    repaired = time.monotonic()
    system.start("w0")
    notes = f"exit {code} naming partition {part}, offset {bad_at}; nothing of it committed"
    finish(system, load, "unreadable state in the changelog, repaired", repaired, notes)


def test_changelog_unwritable_stops_the_worker(make_system) -> None:
    system: System = make_system("changelog", ENGAGEMENT_DURABLE_TIMEOUT="10s")
    load = workload(909, system)
    worker = system.start("w0")
    system.publish(load.first)
    progress(system, len(load.first) // 2)
    topic = Topics.of(system.settings).changelog
    system.set_topic_config(topic, "max.message.bytes", "1")  # the broker refuses every batch
    refused = time.monotonic()
    system.publish_in_background(load.second)  # paced (wall clock): the fail-stop comes first
    answers: list[tuple[int, bytes]] = []

    def stuck_or_stopped() -> bool:
        """/readyz says so while the group waits; a record the broker refuses for good (too
        large) stops the worker at once, before any timeout."""
        try:
            answers.append(worker.get("/readyz"))
        except OSError:
            return not worker.running
        return answers[-1][0] == 503 or not worker.running

    wait_until(stuck_or_stopped, 60, "/readyz answering 503 or a fail-stop", every=0.25)
    if answers and answers[-1][0] == 503:
        assert b"not been durable" in answers[-1][1], answers[-1]
    code = worker.wait_exit(180)
    stopped = time.monotonic() - refused
    log = worker.log_tail(300)
    assert code == 70, log
    assert "was not made durable within 10s" in log, log
    assert f"cannot deliver the record for {topic}" in log, log
    system.set_topic_config(topic, "max.message.bytes", "1048588")
    fixed = time.monotonic()
    system.start("w0")
    ready = "/readyz 503, " if any(status == 503 for status, _ in answers) else ""
    notes = f"max.message.bytes=1 on the changelog: {ready}exit {code} after {stopped:.0f} s"
    finish(system, load, "changelog unwritable (fail-stop)", fixed, notes)


@pytest.mark.configs("event-memory")  # replication, not clocks: one configuration is enough
def test_partition_leader_node_killed_on_a_three_node_cluster(
    make_cluster_system, fault_cluster: KafkaCluster
) -> None:
    """Internal topics with replication factor 3 (the brokers' default, asked for with -1) and
    min.insync.replicas=2; the node leading most of the events.by_user and changelog
    partitions is SIGKILLed mid-stream, input keeps coming while it is down, and more comes
    while it returns, catches up and takes its partitions' leadership back."""
    system: System = make_cluster_system("leader", ENGAGEMENT_MIN_INSYNC_REPLICAS="2")
    assert system.settings.replication_factor == -1
    load = workload(707, system)
    half = len(load.second) // 2  # the oracle's closing clock events stay last
    during, after = load.second[:half], load.second[half:]
    system.start("w0")
    topics = Topics.of(system.settings)
    internal = [topics.input, *topics.owned, topics.changelog, topics.leader]
    for topic in internal:
        assert system.replication(topic) == (3, "2"), topic
    system.publish(load.first)
    progress(system, len(load.first) // 2)
    led = [system.leaders(topics.by_user), system.leaders(topics.changelog)]
    victim = max((1, 2, 3), key=lambda node: sum(list(m.values()).count(node) for m in led))
    counts = [list(m.values()).count(victim) for m in led]
    assert all(counts), f"node {victim} leads {counts} by_user/changelog partitions"
    fault_cluster.node(victim).kill()
    killed = time.monotonic()

    def moved() -> bool:
        return all(victim not in system.leaders(t).values() for t in internal)

    failover = wait_until(moved, 60, f"leaders moved off node {victim}", every=0.2)
    system.publish(during)  # acks=all with 2 of 3 in sync: input goes on
    progress(system, len(load.first) + len(during) // 2, timeout=180)
    time.sleep(max(0.0, NODE_DOWN_S - (time.monotonic() - killed)))  # past session timeouts
    down = time.monotonic() - killed
    fault_cluster.start()  # the node comes back: same port, same data
    back = time.monotonic()
    system.publish(after)  # while it catches up and takes leadership back
    wait_until(
        lambda: all(system.in_sync(t, victim) for t in internal), 120, "the node in sync again"
    )
    caught_up = time.monotonic() - back
    wait_until(lambda: victim in system.leaders(topics.by_user).values(), 60, "leadership back")
    notes = (
        f"node {victim} led {counts[0]}/4 by_user and {counts[1]}/4 changelog partitions; "
        f"leaders moved in {failover:.1f} s; node down {down:.1f} s, in sync "
        f"{caught_up:.1f} s after its return, then leading again"
    )
    finish(system, load, "3-node cluster, partition leader killed", back, notes)
    assert fault_cluster.running
