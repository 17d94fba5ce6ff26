"""Fault scenarios on Apache Kafka: crashes, takeovers, a broker restart, a clean shutdown, an
unwritable dead-letter topic, abusive input, and the node leading the partitions of a
three-node cluster killed. Each one ends with the same checks
(``checks.finish``): input committed to its end, every gauge equal to the oracle, every input
message valid or dead-lettered, every expected signal delivered, duplicates sharing their id.
"""

from __future__ import annotations

import time

from streams.testbed.brokers import KafkaCluster
from streams.testbed.processes import WorkerProcess
from streams.topics import Topics
from tests.faults import System, rss_bytes, wait_until
from tests.faults.abuse import abusive_input
from tests.faults.checks import finish, progress
from tests.faults.conftest import workload

GRACE_S = 30.0  # WorkerProcess.stop's SIGTERM grace period before SIGKILL
NODE_DOWN_S = 20.0  # the killed cluster node stays down at least this long


def test_kill_9_mid_stream_then_restart(make_system) -> None:
    system: System = make_system("kill9")
    load = workload(101)
    worker = system.start("w0")
    system.publish(load.first + load.second)
    progress(system, load.size // 4)
    worker.kill()
    where = system.ingest_position()
    restarted = time.monotonic()
    system.start("w0")
    notes = f"SIGKILL with {where[0]:,} of {where[1]:,} input committed"
    finish(system, load, "kill -9 worker, restart", restarted, notes)


def test_two_workers_one_killed_other_takes_over(make_system) -> None:
    system: System = make_system("takeover")
    load = workload(202)
    w0, w1 = system.start("w0"), system.start("w1")
    wait_until(
        lambda: [w.metrics().get("engagement_partitions_owned") for w in (w0, w1)] == [2.0, 2.0],
        60,
        "two partitions on each worker",
    )
    system.publish(load.first + load.second)
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
    load = workload(303)
    system.start("w0")
    system.publish(load.first + load.second)
    progress(system, load.size // 4)
    down = time.monotonic()
    fault_broker.restart()  # SIGTERM, same port and log dir, start again
    outage = time.monotonic() - down
    back = time.monotonic()
    finish(system, load, "broker stopped + restarted", back, f"broker down {outage:.1f} s")


def test_sigterm_is_a_clean_shutdown(make_system) -> None:
    system: System = make_system("sigterm")
    load = workload(404)
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
    load = workload(505)
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
    finish(system, load, "dead-letter topic unwritable", fixed, f"{held:.0f} retries while held")


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
    load = workload(606, extra=late.oracle_events)
    worker = system.start("w0")
    pid = worker_pid(worker)
    system.publish(load.first)
    started = time.monotonic()
    wait_until(system.ingest_caught_up, 240, "the first half")
    clean_rate = len(load.first) / (time.monotonic() - started)
    rss_before = rss_bytes(pid)
    system.publish(bad + late.messages)
    wait_until(system.ingest_caught_up, 240, "the abusive input")
    rss_after = rss_bytes(pid)
    system.publish(load.second)
    started = time.monotonic()
    wait_until(system.ingest_caught_up, 240, "the second half")
    after_rate = len(load.second) / (time.monotonic() - started)
    growth = (rss_after - rss_before) / 2**20
    notes = (
        f"{len(bad) + len(late.messages):,} abusive msgs; RSS {rss_before / 2**20:.0f}"
        f"->{rss_after / 2**20:.0f} MiB; {clean_rate:,.0f}->{after_rate:,.0f} msg/s"
    )
    finish(system, load, "input abuse at high rate", started, notes)
    assert growth < 200, f"RSS grew by {growth:.0f} MiB"
    assert after_rate > clean_rate / 3, f"throughput did not recover: {notes}"


def worker_pid(worker: WorkerProcess) -> int:
    proc = worker._proc  # WorkerProcess has no public pid (yet)
    assert proc is not None
    return int(proc.pid)


def test_partition_leader_node_killed_on_a_three_node_cluster(
    make_cluster_system, fault_cluster: KafkaCluster
) -> None:
    """Internal topics with replication factor 3 (the brokers' default, asked for with -1) and
    min.insync.replicas=2; the node leading most of the events.by_user and changelog
    partitions is SIGKILLed mid-stream, input keeps coming while it is down, and more comes
    while it returns, catches up and takes its partitions' leadership back."""
    system: System = make_cluster_system("leader", ENGAGEMENT_MIN_INSYNC_REPLICAS="2")
    assert system.settings.replication_factor == -1
    load = workload(707)
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
