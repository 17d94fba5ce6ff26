"""What ``engagement worker`` runs.

- :mod:`~streams.worker.app`: assembles the Faust app, its table, agents, timers and services.
- :mod:`~streams.worker.ingest`, :mod:`~streams.worker.ingest_process`: the ingest stage's
  confluent-kafka loop, in the worker or in a child process of it.
- :mod:`~streams.worker.runtime`: folds ``events.by_user`` batches through the pure engine and
  makes each group of output durable (signals, changelog, then acks).
- :mod:`~streams.worker.store`, :mod:`~streams.worker.changelog`: the state table's stores
  (memory, RocksDB) with bulk restore, and the changelog reader.
- :mod:`~streams.worker.consumer`: Faust's consumer that rewinds partitions with no committed
  offset.
- :mod:`~streams.worker.delivery`, :mod:`~streams.worker.codecs`: producing, and the
  ``events.by_user`` batch format.
- :mod:`~streams.worker.metrics`, :mod:`~streams.worker.web`: ``/metrics``, ``/users/{id}``,
  ``/healthz``, ``/readyz``.
- :mod:`~streams.worker.gc_tuning`: the garbage collector's settings for the hot loops.
"""
