"""The shell around the pure stages: what runs them, what operators and analysts use, and the
machinery that develops and measures them.

- :mod:`streams.cli`, :mod:`streams.settings`, :mod:`streams.kafka`, :mod:`streams.topics`,
  :mod:`streams.redaction`: the ``engagement`` command, the one settings object, client
  configuration, topic names, secrets kept out of every log line.
- :mod:`streams.worker`: everything ``engagement worker`` runs.
- :mod:`streams.tools`: publish, signals, simulate, fit, retention.
- :mod:`streams.demo`: ``make demo``.
- :mod:`streams.testbed`: brokers on loopback, the benchmark, process helpers.

``streams.worker`` imports nothing from ``tools``, ``demo`` or ``testbed`` (a test checks).
"""
