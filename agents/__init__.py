"""How data flows through engagement-stream (stage names = modules, topics, metric labels):

    user.events     raw bytes          --ingest-->    events.by_user (user batches) | dead_letter
    events.by_user  user_id -> Event   --activity-->  user state table + partition aggregates
    user state      user_id -> State   --lifecycle--> signals.{dormant,churn_risk,churned,...}
                                       (on events, and on deadlines from the timer index)

``ingest`` is :class:`streams.worker.ingest.IngestService` (confluent-kafka batches),
``activity`` and ``lifecycle`` are Faust agents and timers in :mod:`agents.activity` and
:mod:`agents.lifecycle`; everything they decide lives in :mod:`agents.logic` as plain functions.
"""
