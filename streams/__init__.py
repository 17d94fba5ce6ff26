"""The shell around the pure stages: what runs them, what operators and analysts use, and the
machinery that develops and measures them.

- :mod:`streams.cli`, :mod:`streams.exits`, :mod:`streams.settings`, :mod:`streams.kafka`,
  :mod:`streams.topics`, :mod:`streams.logs`, :mod:`streams.redaction`: the ``engagement``
  command and its exit codes, the one settings object, client configuration, topic names,
  text or JSON log lines, secrets kept out of every log line.
- :mod:`streams.worker`: everything ``engagement worker`` runs.
- :mod:`streams.tools`: publish, signals, dead-letters, simulate, fit, retention, settings.
- :mod:`streams.demo`: ``make demo``.
- :mod:`streams.testbed`: brokers on loopback, the benchmark, process helpers.

``streams.worker`` imports nothing from ``tools``, ``demo`` or ``testbed`` (a test checks).
"""
