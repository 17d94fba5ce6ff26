"""``engagement bench``: throughput, CPU, latency, deadline delay, memory, recovery and
scale-out of engagement-stream, side by side with a raw confluent-kafka loop (the limit of the
pure Python work), Quix Streams with state and a naive per-event Faust agent, on Apache Kafka
with simulated data.

Modules: :mod:`~streams.testbed.bench.report` (pure: figures, targets, Markdown), ``measure``
(/proc), ``data`` (simulated input), ``phases`` (throughput), ``live`` (wall-clock phases),
``raw``, ``quix_state`` and ``naive`` (the other systems, run as child processes; Quix Streams
in a virtual environment of its own), ``profile`` (py-spy), ``engine_only`` and
``ingest_only`` (the engine and the ingest step alone, timed or counted in instructions),
``cli`` (``add_bench_parser``). Nothing is imported here, so that ``python -m
streams.testbed.bench.raw`` / ``.naive`` start clean.
"""
