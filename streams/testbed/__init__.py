"""Development machinery: :mod:`.brokers` (Apache Kafka and Tansu on loopback, for the tests,
``engagement broker`` and the demo), :mod:`.bench` (``engagement bench``) and :mod:`.processes`
(worker processes and their ``/metrics``). The worker never imports it."""
